"""What a user of the served model does to a real tritonserver, recorded as JSON for tests/test_serve.py.

Runs in the serve environment (tritonclient and tritonserver live there, as in NVIDIA's Triton
container): `python tests/serve_scenarios.py MODEL_DIR WORK_DIR`. Prints one line `RESULT {...}`.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

import numpy as np

from kollm.serve.client import LLMClient, ServingError
from kollm.serve.contract import Limits
from kollm.serve.load import run_load
from kollm.serve.server import TritonServer
from triton_model_repo import RepositoryOptions, write_repository

PROMPT = "영화 리뷰를 써 주세요."


def post(url: str, path: str, body: bytes | str) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else body.encode("utf-8")
    req = urllib.request.Request(f"http://{url}{path}", data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        text = e.read().decode("utf-8", "replace")
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, {"error": text}


def raw_infer(url: str, model: str, inputs: list[dict]) -> tuple[int, dict]:
    return post(url, f"/v2/models/{model}/infer", json.dumps({"inputs": inputs}, ensure_ascii=False))


def text_input(prompt, shape=(1, 1), datatype="BYTES"):
    return {"name": "text_input", "shape": list(shape), "datatype": datatype, "data": [prompt]}


def scalar(name, datatype, value):
    return {"name": name, "shape": [1, 1], "datatype": datatype, "data": [value]}


def bad_requests(url: str, client: LLMClient) -> list[dict]:
    """Each user mistake, then a good request: the server must refuse the first and answer the second."""
    g = "/v2/models/kollm/generate"
    long_prompt = "영화 " * 2000  # under the character limit, far over the context
    cases = {
        "empty prompt": lambda: post(url, g, '{"text_input": ""}'),
        "whitespace prompt": lambda: post(url, g, '{"text_input": "   "}'),
        "invalid UTF-8": lambda: _client_status(lambda: client.generate(b"\xff\xfe\xfd", max_tokens=4)),
        "1 MB prompt": lambda: post(url, g, json.dumps({"text_input": "가" * (1 << 20)})),
        "prompt longer than the context": lambda: post(url, g, json.dumps({"text_input": long_prompt})),
        "max tokens 0": lambda: post(url, g, '{"text_input": "안녕", "sampling_param_max_tokens": 0}'),
        "max tokens negative": lambda: post(url, g, '{"text_input": "안녕", "sampling_param_max_tokens": -5}'),
        "max tokens huge": lambda: post(url, g, '{"text_input": "안녕", "sampling_param_max_tokens": 1000000}'),
        "temperature < 0": lambda: post(url, g, '{"text_input": "안녕", "sampling_param_temperature": -0.5}'),
        "temperature NaN": lambda: _client_status(lambda: client.generate("안녕", temperature=np.float32("nan"))),
        "top-p 0": lambda: post(url, g, '{"text_input": "안녕", "sampling_param_top_p": 0.0}'),
        "top-p above 1": lambda: post(url, g, '{"text_input": "안녕", "sampling_param_top_p": 1.5}'),
        "top-k < 0": lambda: post(url, g, '{"text_input": "안녕", "sampling_param_top_k": -1}'),
        "frequency penalty 5": lambda: post(url, g, '{"text_input": "안녕", "sampling_param_frequency_penalty": 5.0}'),
        "nine stop strings": lambda: _client_status(lambda: client.generate("안녕", stop=list("가나다라마바사아자"))),
        "empty stop string": lambda: _client_status(lambda: client.generate("안녕", stop=[""])),
        "best_of 2": lambda: post(url, g, '{"text_input": "안녕", "sampling_param_best_of": 2}'),
        "LoRA adapter": lambda: post(url, g, '{"text_input": "안녕", "lora_name": "x"}'),
        "image input": lambda: post(url, g, '{"text_input": "안녕", "image_url": "http://127.0.0.1/x.png"}'),
        "max tokens as FP32": lambda: raw_infer(
            url, "kollm", [text_input("안녕"), scalar("sampling_param_max_tokens", "FP32", 3.0)]
        ),
        "two prompts in one request": lambda: raw_infer(url, "kollm", [text_input(["가", "나"], (1, 2))]),
        "prompt as INT32": lambda: raw_infer(url, "kollm", [text_input(3, datatype="INT32")]),
        "missing text_input": lambda: raw_infer(url, "kollm", [scalar("sampling_param_max_tokens", "INT32", 3)]),
        "unknown input": lambda: raw_infer(url, "kollm", [text_input("안녕"), scalar("foo", "INT32", 1)]),
        "batch above max_batch_size": lambda: raw_infer(url, "kollm", [text_input(["가"] * 17, (17, 1))]),
        "unknown model": lambda: post(url, "/v2/models/nope/generate", '{"text_input": "안녕"}'),
        "unknown version": lambda: post(url, "/v2/models/kollm/versions/7/generate", '{"text_input": "안녕"}'),
        "streaming on the non-decoupled model": lambda: post(url, g, '{"text_input": "안녕", "streaming": true}'),
        "stop request without an id": lambda: post(url, g, '{"text_input": "안녕", "stop": true}'),
        # Triton hands /generate fields that are no input to the model as request parameters
        "misspelt max_tokens": lambda: post(url, g, '{"text_input": "안녕", "sampling_param_max_token": 4}'),
        "max_tokens without its prefix": lambda: post(url, g, '{"text_input": "안녕", "max_tokens": 4}'),
        "misspelt temperature": lambda: post(url, g, '{"text_input": "안녕", "sampling_param_temprature": 0.5}'),
        "max tokens above INT32": lambda: post(
            url, g, '{"text_input": "안녕", "sampling_param_max_tokens": 3000000000}'
        ),
    }
    return _each_then_a_good_one(cases, client)


# Requests Triton's own HTTP front end refuses before the model runs (README, "Serving": which and why)
TRITON_REFUSES = {  # what the README's table shows -> the body sent
    '"sampling_param_max_tokens": 10.5': '{"text_input": "안녕", "sampling_param_max_tokens": 10.5}',
    '"sampling_param_max_tokens": "10"': '{"text_input": "안녕", "sampling_param_max_tokens": "10"}',
    '"sampling_param_seed": -1': '{"text_input": "안녕", "sampling_param_seed": -1}',
    '"streaming": "yes"': '{"text_input": "안녕", "streaming": "yes"}',
    '"text_input": null': '{"text_input": null}',
    '{"text_input": "안녕",': '{"text_input": "안녕",',
}


def triton_refuses(url: str, client: LLMClient) -> list[dict]:
    return _each_then_a_good_one(
        {
            name: (lambda body=body: post(url, "/v2/models/kollm/generate", body))
            for name, body in TRITON_REFUSES.items()
        },
        client,
    )


def _each_then_a_good_one(cases: dict, client: LLMClient) -> list[dict]:
    results = []
    for name, call in cases.items():
        status, body = call()
        good = client.generate(PROMPT, max_tokens=8)
        results.append(
            {
                "case": name,
                "status": status,
                "error": str(body.get("error", "")),
                "next_ok": bool(good.text) and good.finish_reason in ("stop", "length"),
            }
        )
    return results


def _client_status(call) -> tuple[int, dict]:
    try:
        call()
        return 200, {}
    except ServingError as e:
        return int(e.status) if str(e.status).isdigit() else 0, {"error": str(e)}


def cancellation(url: str, client: LLMClient) -> dict:
    """A long answer streamed to the end, then one abandoned after its first event: the abandoned one must
    stop on the server, so the next request is answered at once instead of after the long answer."""
    t0 = time.perf_counter()
    full = list(client.stream(PROMPT, max_tokens=400, min_tokens=400))
    full_s = time.perf_counter() - t0
    finish = client.last.finish_reason
    conn = http.client.HTTPConnection(*url.split(":"), timeout=60)
    conn.request(
        "POST",
        "/v2/models/kollm_stream/generate_stream",
        body=json.dumps(
            {
                "text_input": PROMPT,
                "streaming": True,
                "sampling_param_max_tokens": 400,
                "sampling_param_min_tokens": 400,
            }
        ),
        headers={"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    first = response.readline()
    conn.close()  # the client goes away mid-answer
    time.sleep(0.3)  # the engine checks its clients every 50 ms
    t0 = time.perf_counter()
    after = client.generate(PROMPT, max_tokens=4)
    return {
        "full_s": full_s,
        "full_pieces": len(full),
        "full_finish": finish,
        "first_event": first.decode()[:80],
        "after_cancel_s": time.perf_counter() - t0,
        "after_text": after.text,
    }


def concurrency(http_url: str, grpc_url: str, clients: int, seconds: float) -> dict:
    """`clients` threads, half streaming over gRPC and half unary over HTTP, for `seconds`."""
    users = [LLMClient(grpc_url, protocol="grpc") if i % 2 else LLMClient(http_url) for i in range(clients)]

    def call(i: int) -> int:
        if i % 2:
            text = "".join(users[i].stream(PROMPT, max_tokens=16))
        else:
            text = users[i].generate(PROMPT, max_tokens=16).text
        if not text or "\ufffd" in text:
            raise ValueError(f"bad answer {text!r}")
        return 16

    return run_load(call, clients, seconds)


def fault(server: TritonServer, http_url: str) -> dict:
    """SIGTERM while 8 clients are waiting for long answers: each of those calls ends in an answer or a clean
    error, none hangs, the clients close their connections, and the server exits cleanly; after a restart
    the next request succeeds."""
    outcomes, lock, stopping = [], threading.Lock(), threading.Event()

    def worker():
        client = LLMClient(http_url, timeout_s=60, retries=0)
        try:
            while True:
                t0 = time.perf_counter()
                try:
                    client.generate(PROMPT, max_tokens=200, min_tokens=200)
                    outcome = "answer"
                except ServingError as e:
                    outcome = f"error: {e}"[:200]
                with lock:
                    outcomes.append((outcome, time.perf_counter() - t0))
                if outcome != "answer" or stopping.is_set():
                    return
        finally:
            client.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    stopping.set()
    code = server.stop()
    for t in threads:
        t.join(timeout=90)
    hung = sum(t.is_alive() for t in threads)
    down = _client_status(lambda: LLMClient(http_url, retries=0).generate(PROMPT, max_tokens=4))
    server.start()
    after = LLMClient(server.http_url).generate(PROMPT, max_tokens=8)
    return {
        "exit_code": code,
        "hung": hung,
        "outcomes": outcomes,
        "down_error": down[1].get("error", ""),
        "after_restart": after.text,
    }


def basics(url: str, grpc_url: str, metrics_port: int) -> dict:
    h, g = LLMClient(url), LLMClient(grpc_url, protocol="grpc")
    out = {}
    with urllib.request.urlopen(f"http://{url}/v2/health/ready") as r:
        out["ready"] = r.status
    with urllib.request.urlopen(f"http://{url}/v2/models/kollm") as r:
        out["metadata"] = json.loads(r.read())
    with urllib.request.urlopen(f"http://{url}/v2/models/kollm_stream/config") as r:
        out["stream_config"] = json.loads(r.read())
    out["http"] = vars(h.generate(PROMPT, max_tokens=12, min_tokens=12))
    out["grpc"] = vars(g.generate(PROMPT, max_tokens=12, min_tokens=12))
    out["http_stream"] = list(h.stream(PROMPT, max_tokens=12, min_tokens=12))
    out["grpc_stream"] = list(g.stream(PROMPT, max_tokens=12, min_tokens=12))
    out["grpc_stream_final"] = vars(g.last)
    out["generate"] = post(
        url,
        "/v2/models/kollm/generate",
        json.dumps(
            {
                "text_input": PROMPT,
                "sampling_param_max_tokens": 12,
                "sampling_param_min_tokens": 12,
                "return_finish_reason": True,
            }
        ),
    )
    sampled = dict(max_tokens=12, temperature=1.0, top_k=50, top_p=0.9, seed=1234)
    out["seeded"] = [h.generate(PROMPT, **sampled).text for _ in range(2)] + [
        h.generate(PROMPT, **{**sampled, "seed": 99}).text
    ]
    out["default_max_tokens"] = vars(h.generate(PROMPT))
    first = h.generate(PROMPT, max_tokens=12, min_tokens=12).text  # long enough to stop in the middle
    stop = first[len(first) // 2 :][:2].strip() or first[-1]
    out["stop_string"] = {
        "stop": stop,
        "unstopped": first,
        "result": vars(h.generate(PROMPT, max_tokens=12, min_tokens=12, stop=[stop])),
    }
    out["bad_requests"] = bad_requests(url, h)
    out["triton_refuses"] = triton_refuses(url, h)
    out["cancellation"] = cancellation(url, h)
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as r:
        metrics = r.read().decode()
    out["metrics_success"] = [
        line
        for line in metrics.splitlines()
        if line.startswith("nv_inference_request_success{") and 'model="kollm"' in line
    ]
    return out


def chat(url: str, grpc_url: str, model_dir: str) -> dict:
    """`kollm chat` as a user pipes it: two turns over HTTP, one over gRPC, and one against a port with no server."""

    def chat_cli(*args, stdin: str):
        proc = subprocess.run(
            [sys.executable, "-m", "recipes.cli", "chat", "--model-dir", model_dir, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr[-1500:]}

    from kollm.serve.server import free_port

    def client_error(call) -> str:
        try:
            call()
            return ""
        except ServingError as e:
            return str(e)

    return {
        "http": chat_cli("--url", url, "--max-tokens", "12", stdin="안녕하세요\n영화 리뷰를 써 주세요.\n/exit\n"),
        "grpc": chat_cli("--url", grpc_url, "--protocol", "grpc", "--max-tokens", "12", stdin="안녕하세요\n"),
        # the gRPC port given without --protocol (its help names both ports): detected
        "grpc_detected": chat_cli("--url", grpc_url, "--max-tokens", "12", stdin="안녕하세요\n"),
        # ... and with the wrong one: one line per turn, the chat goes on
        "grpc_as_http": chat_cli(
            "--url", grpc_url, "--protocol", "http", "--max-tokens", "12", stdin="안녕하세요\n또 안녕하세요\n"
        ),
        "client_on_grpc_port": {
            "generate": client_error(lambda: LLMClient(grpc_url, retries=0).generate(PROMPT, max_tokens=4)),
            "stream": client_error(lambda: list(LLMClient(grpc_url, retries=0).stream(PROMPT, max_tokens=4))),
        },
        "down": chat_cli("--url", f"127.0.0.1:{free_port()}", "--timeout", "5", stdin="안녕하세요\n"),
    }


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children still running: tritonserver and its python stubs."""
    import os

    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def departed_unary_clients(model_dir: str, work: str, max_request_s: float = 1.5, clients: int = 8) -> dict:
    """`clients` unary /generate requests for 3,000 tokens (~6 s together here), each client giving up after 1 s.
    HTTP tells the model nothing of it, so the server's deadline (max_request_s) must end that work: how long
    until the server's processes are idle again, and how many requests the deadline ended. A server of its own:
    the others' deadline leaves room for 32 clients' queueing, and its model's context is widened to 4,096
    positions (RoPE has no position table) so that an answer takes longer than the deadline on fast hosts too."""
    import shutil

    long_model = work + "/model_4096"
    shutil.copytree(model_dir, long_model, dirs_exist_ok=True)
    config = json.load(open(long_model + "/config.json"))
    json.dump({**config, "max_position_embeddings": 4096}, open(long_model + "/config.json", "w"))
    write_repository(
        work + "/repo_deadline",
        long_model,
        RepositoryOptions(
            max_batch=16, limits=Limits(max_tokens=16, max_tokens_limit=3000, max_request_s=max_request_s)
        ),
    )
    server = TritonServer(work + "/repo_deadline", work + "/deadline").start()
    try:
        return _departed(server, max_request_s, clients)
    finally:
        server.stop()


def _departed(server: TritonServer, max_request_s: float, clients: int) -> dict:
    def failures() -> int:  # the model logs each request its deadline ends
        return open(server.log_path, errors="replace").read().count("request ended by serve.max_request_s")

    before = failures()
    body = json.dumps({"text_input": PROMPT, "sampling_param_max_tokens": 3000, "sampling_param_min_tokens": 3000})

    def leave_after_1s():
        req = urllib.request.Request(
            f"http://{server.http_url}/v2/models/kollm/generate",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(req, timeout=1.0).read()
        except OSError:
            pass  # the timeout: the client gives up and closes its connection

    threads = [threading.Thread(target=leave_after_1s) for _ in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    left = time.monotonic()
    busy = []  # (seconds since the clients left, CPU share of the server over the last 0.25 s)
    last_cpu, last_t = _cpu_seconds(server.proc.pid), time.monotonic()
    while time.monotonic() - left < max_request_s + 10:
        time.sleep(0.25)
        cpu, now = _cpu_seconds(server.proc.pid), time.monotonic()
        busy.append((round(now - left, 2), round((cpu - last_cpu) / (now - last_t), 3)))
        last_cpu, last_t = cpu, now
        if len(busy) >= 4 and all(share < 0.1 for _, share in busy[-4:]):
            break
    idle_at = next((t for i, (t, _) in enumerate(busy) if all(s < 0.1 for _, s in busy[i:])), None)
    time.sleep(0.5)
    return {
        "clients": clients,
        "left_after_s": round(left - t0, 2),
        "busy": busy,
        "idle_after_s": None if idle_at is None else idle_at - 0.25,  # idle since the start of that window
        "deadline_failures": failures() - before,
        "max_request_s": max_request_s,
    }


CHROMIUM = "/usr/bin/chromium"


def browser(url: str, model_dir: str, work: str, max_tokens: int = 300, min_tokens: int = 300) -> dict:
    """The Gradio chat (`kollm chat --ui`) against Triton, used in headless Chromium: type a Korean prompt,
    watch the streamed answer grow, read it, save a screenshot."""
    import os

    if not os.path.exists(CHROMIUM):
        return {"skipped": f"no {CHROMIUM} (tests/install_browser.sh needs root and apt)"}
    from playwright.sync_api import sync_playwright

    from kollm.serve.server import free_port

    port = free_port()
    log = open(os.path.join(work, "gradio.log"), "w")
    ui = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recipes.cli",
            "chat",
            "--ui",
            "--url",
            url,
            "--model-dir",
            model_dir,
            "--port",
            str(port),
            "--max-tokens",
            str(max_tokens),
            "--min-tokens",
            str(min_tokens),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.time() > deadline or ui.poll() is not None:
                    return {"exception": "the Gradio app did not start", "server_log": open(log.name).read()[-2000:]}
                time.sleep(0.5)
        lengths = []
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = chromium.new_page(viewport={"width": 900, "height": 700})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")  # Gradio keeps a stream open
            box = page.get_by_role("textbox").first
            box.wait_for(timeout=60000)
            box.fill("긍정적인 영화 리뷰를 써 주세요.")
            box.press("Enter")
            bot = page.locator(".message.bot, [data-testid='bot']").last
            bot.wait_for(timeout=30000)
            t0 = time.time()
            while time.time() - t0 < 20:
                lengths.append(len(bot.inner_text()))
                if len(lengths) > 5 and lengths[-1] == lengths[-5] and lengths[-1] > 0:
                    break
                time.sleep(0.1)
            answer = bot.inner_text()
            shot = os.path.join(work, "gradio_chat.png")
            page.screenshot(path=shot)
            chromium.close()
        return {
            "answer": answer,
            "lengths": lengths,
            "screenshot": shot,
            "screenshot_bytes": os.path.getsize(shot),
            "host": "127.0.0.1",
        }
    finally:
        ui.terminate()
        ui.wait(timeout=30)


def main(model_dir: str, work: str) -> dict:
    """Each section's observations under its name; a section that raised records its traceback instead."""
    write_repository(work + "/repo", model_dir, RepositoryOptions(max_batch=16, limits=Limits(max_tokens=16)))
    server = TritonServer(work + "/repo", work).start()
    out: dict = {"command": server.command()}
    sections = {
        "basics": lambda: basics(server.http_url, server.grpc_url, server.metrics_port),
        "chat": lambda: chat(server.http_url, server.grpc_url, model_dir),
        "departed": lambda: departed_unary_clients(model_dir, work),
        "browser": lambda: browser(server.http_url, model_dir, work),
        "load": lambda: concurrency(server.http_url, server.grpc_url, clients=32, seconds=60),
        "fault": lambda: fault(server, server.http_url),
    }
    try:
        for name, section in sections.items():
            try:
                out[name] = section()
            except Exception:
                out[name] = {"exception": traceback.format_exc()[-3000:], "server_log": server.log_tail(20)}
    finally:
        out["final_exit_code"] = server.stop()
    return out


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(sys.argv[1], sys.argv[2]), ensure_ascii=False), flush=True)
