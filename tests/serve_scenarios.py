"""What a user of the served model does to a real tritonserver, recorded as JSON for tests/test_serve.py.

Runs in the serve environment (tritonclient and tritonserver live there, as in NVIDIA's Triton
container): `python tests/serve_scenarios.py MODEL_DIR WORK_DIR`. Prints one line `RESULT {...}`.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

import numpy as np

from kollm.serve.client import LLMClient, ServingError
from kollm.serve.contract import Limits
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
        "max tokens as FP32": lambda: raw_infer(url, "kollm", [text_input("안녕"),
                                                               scalar("sampling_param_max_tokens", "FP32", 3.0)]),
        "two prompts in one request": lambda: raw_infer(url, "kollm", [text_input(["가", "나"], (1, 2))]),
        "prompt as INT32": lambda: raw_infer(url, "kollm", [text_input(3, datatype="INT32")]),
        "missing text_input": lambda: raw_infer(url, "kollm", [scalar("sampling_param_max_tokens", "INT32", 3)]),
        "unknown input": lambda: raw_infer(url, "kollm", [text_input("안녕"), scalar("foo", "INT32", 1)]),
        "batch above max_batch_size": lambda: raw_infer(url, "kollm", [text_input(["가"] * 17, (17, 1))]),
        "unknown model": lambda: post(url, "/v2/models/nope/generate", '{"text_input": "안녕"}'),
        "unknown version": lambda: post(url, "/v2/models/kollm/versions/7/generate", '{"text_input": "안녕"}'),
        "malformed JSON": lambda: post(url, g, '{"text_input": "안녕",'),
        "streaming on the non-decoupled model": lambda: post(url, g, '{"text_input": "안녕", "streaming": true}'),
        "stop request without an id": lambda: post(url, g, '{"text_input": "안녕", "stop": true}'),
    }
    results = []
    for name, call in cases.items():
        status, body = call()
        good = client.generate(PROMPT, max_tokens=8)
        results.append({"case": name, "status": status, "error": str(body.get("error", "")),
                        "next_ok": bool(good.text) and good.finish_reason in ("stop", "length")})
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
    conn.request("POST", "/v2/models/kollm_stream/generate_stream",
                 body=json.dumps({"text_input": PROMPT, "streaming": True, "sampling_param_max_tokens": 400,
                                  "sampling_param_min_tokens": 400}),
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    first = response.readline()
    conn.close()  # the client goes away mid-answer
    time.sleep(0.3)  # the engine checks its clients every 50 ms
    t0 = time.perf_counter()
    after = client.generate(PROMPT, max_tokens=4)
    return {"full_s": full_s, "full_pieces": len(full), "full_finish": finish, "first_event": first.decode()[:80],
            "after_cancel_s": time.perf_counter() - t0, "after_text": after.text}


def concurrency(http_url: str, grpc_url: str, clients: int, seconds: float) -> dict:
    """`clients` threads, half streaming over gRPC and half unary over HTTP, for `seconds`."""
    errors, latencies, tokens, lock = [], [], [0], threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(i: int):
        client = LLMClient(grpc_url if i % 2 else http_url, protocol="grpc" if i % 2 else "http")
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                if i % 2:
                    text = "".join(client.stream(PROMPT, max_tokens=16))
                else:
                    text = client.generate(PROMPT, max_tokens=16).text
                ok = bool(text) and "\ufffd" not in text
            except Exception as e:
                ok, text = False, f"{type(e).__name__}: {e}"
            with lock:
                latencies.append(time.perf_counter() - t0)
                tokens[0] += 16 if ok else 0
                if not ok:
                    errors.append(text[:200])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = sorted(latencies)
    return {"requests": len(lat), "errors": errors[:5], "error_count": len(errors),
            "p50_ms": 1000 * lat[len(lat) // 2], "p99_ms": 1000 * lat[int(len(lat) * 0.99)],
            "max_tokens_per_s": tokens[0] / seconds}


def fault(server: TritonServer, http_url: str) -> dict:
    """SIGTERM while 8 clients keep asking for long answers: every call ends in an answer or a clean error
    (none hangs); after a restart the next request succeeds."""
    outcomes, lock = [], threading.Lock()
    started = time.monotonic()

    def worker():
        client = LLMClient(http_url, timeout_s=60, retries=0)
        while time.monotonic() - started < 20:
            t0 = time.perf_counter()
            try:
                client.generate(PROMPT, max_tokens=200, min_tokens=200)
                outcome = "answer"
            except ServingError as e:
                outcome = f"error: {e}"[:200]
            with lock:
                outcomes.append((outcome, time.perf_counter() - t0))
            if outcome != "answer":
                return

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    code = server.stop()
    for t in threads:
        t.join(timeout=90)
    hung = sum(t.is_alive() for t in threads)
    down = _client_status(lambda: LLMClient(http_url, retries=0).generate(PROMPT, max_tokens=4))
    server.start()
    after = LLMClient(server.http_url).generate(PROMPT, max_tokens=8)
    return {"exit_code": code, "hung": hung, "outcomes": outcomes, "down_error": down[1].get("error", ""),
            "after_restart": after.text}


def basics(url: str, grpc_url: str, metrics_port: int) -> dict:
    h, g = LLMClient(url), LLMClient(grpc_url, protocol="grpc")
    out = {}
    with urllib.request.urlopen(f"http://{url}/v2/health/ready") as r:
        out["ready"] = r.status
    with urllib.request.urlopen(f"http://{url}/v2/models/kollm") as r:
        out["metadata"] = json.loads(r.read())
    with urllib.request.urlopen(f"http://{url}/v2/models/kollm_stream/config") as r:
        out["stream_config"] = json.loads(r.read())
    out["http"] = vars(h.generate(PROMPT, max_tokens=12))
    out["grpc"] = vars(g.generate(PROMPT, max_tokens=12))
    out["http_stream"] = list(h.stream(PROMPT, max_tokens=12))
    out["grpc_stream"] = list(g.stream(PROMPT, max_tokens=12))
    out["grpc_stream_final"] = vars(g.last)
    out["generate"] = post(url, "/v2/models/kollm/generate",
                           json.dumps({"text_input": PROMPT, "sampling_param_max_tokens": 12,
                                       "return_finish_reason": True}))
    sampled = dict(max_tokens=12, temperature=1.0, top_k=50, top_p=0.9, seed=1234)
    out["seeded"] = [h.generate(PROMPT, **sampled).text for _ in range(2)] + \
                    [h.generate(PROMPT, **{**sampled, "seed": 99}).text]
    out["default_max_tokens"] = vars(h.generate(PROMPT))
    first = h.generate(PROMPT, max_tokens=12).text
    out["stop_string"] = {"stop": first[2:4], "result": vars(h.generate(PROMPT, max_tokens=12, stop=[first[2:4]])),
                          "unstopped": first}
    out["bad_requests"] = bad_requests(url, h)
    out["cancellation"] = cancellation(url, h)
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as r:
        metrics = r.read().decode()
    out["metrics_success"] = [l for l in metrics.splitlines()
                              if l.startswith("nv_inference_request_success{") and 'model="kollm"' in l]
    return out


def main(model_dir: str, work: str) -> dict:
    """Each section's observations under its name; a section that raised records its traceback instead."""
    write_repository(work + "/repo", model_dir, RepositoryOptions(max_batch=16, limits=Limits(max_tokens=16)))
    server = TritonServer(work + "/repo", work).start()
    out: dict = {"command": server.command()}
    sections = {"basics": lambda: basics(server.http_url, server.grpc_url, server.metrics_port),
                "load": lambda: concurrency(server.http_url, server.grpc_url, clients=32, seconds=20),
                "fault": lambda: fault(server, server.http_url)}
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
