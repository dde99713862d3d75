"""Serving throughput and latency: a plain `transformers` pipeline vs Triton without batching, with dynamic
batching, and with dynamic batching + int8, same model, prompts and answer length, in one run.

    .venv-serve/bin/python benchmarks/serving.py --run runs/tiny     # writes benchmarks/results/serving.json

Every request asks for exactly `--max-tokens` greedy tokens (min = max, repetition penalty 1.2 on
both sides), so tokens/s counts the same work everywhere. Clients are threads in this process, each
sending its next request when the last one is answered, for `--seconds` per cell; the servers get the
same torch thread count. (a) `pipeline`: benchmarks/serving_pipeline_server.py, one request at a time
under a lock, over HTTP; (b) `triton`: kollm's Triton model with max_batch 1; (c) `triton_batching`:
max_batch 32 (Triton dynamic batching, one KV-cached forward pass per token for the batch); (d)
`triton_batching_int8`: (c) with torch dynamic int8 on the model's nn.Linear layers.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from benchmarks.pipeline_tiny import write_result  # noqa: E402
from kollm.generation.local import chat_text  # noqa: E402
from kollm.serve.client import LLMClient  # noqa: E402
from kollm.serve.contract import Limits  # noqa: E402
from kollm.serve.load import run_load  # noqa: E402
from kollm.serve.server import TritonServer, free_port  # noqa: E402
from recipes.cli import served_model  # noqa: E402
from triton_model_repo import RepositoryOptions, write_repository  # noqa: E402

INSTRUCTIONS = [
    "영화 리뷰를 써 주세요.",
    "재미있었던 영화에 대한 긍정적인 리뷰를 써 주세요.",
    "지루한 영화에 대한 부정적인 리뷰를 한 줄로 남겨 주세요.",
    "안녕하세요, 오늘 볼 만한 영화를 추천해 주세요.",
]
CONFIGS = {
    "pipeline": None,
    "triton": RepositoryOptions(max_batch=1),
    "triton_batching": RepositoryOptions(max_batch=32),
    "triton_batching_int8": RepositoryOptions(max_batch=32, quantization="dynamic_int8"),
}


def pipeline_caller(port: int, prompts: list[str], n: int):
    def call(i: int) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            conn.request(
                "POST",
                "/generate",
                body=json.dumps({"text_input": prompts[i % len(prompts)], "max_tokens": n}),
                headers={"Content-Type": "application/json"},
            )
            response = conn.getresponse()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
            json.loads(response.read())
            return n
        finally:
            conn.close()

    return call


def triton_caller(url: str, prompts: list[str], n: int):
    client = LLMClient(url, timeout_s=300)

    def call(i: int) -> int:
        answer = client.generate(prompts[i % len(prompts)], max_tokens=n, min_tokens=n)
        if answer.finish_reason != "length":
            raise RuntimeError(f"finished by {answer.finish_reason!r} before {n} tokens")
        return n

    return call


def measure(name: str, model_dir: str, prompts: list[str], args, work: str) -> list[dict]:
    rows = []
    if CONFIGS[name] is None:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "serving_pipeline_server.py"), model_dir, str(port), str(args.threads)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "READY"
        call, stop = pipeline_caller(port, prompts, args.max_tokens), proc.terminate
    else:
        opts = CONFIGS[name]
        opts.threads, opts.limits = args.threads, Limits(max_tokens=args.max_tokens)
        repo = os.path.join(work, name)
        write_repository(repo, model_dir, opts)
        server = TritonServer(repo, os.path.join(work, name + "_server")).start()
        call, stop = triton_caller(server.http_url, prompts, args.max_tokens), server.stop
    try:
        for i in range(2):
            call(i)  # warm-up
        for clients in args.clients:
            row = {"config": name, **run_load(call, clients, args.seconds)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/tiny", help="a pipeline run whose aligned model is served")
    parser.add_argument("--seconds", type=float, default=15.0, help="load per (config, clients) cell")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of every server")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--out", default=os.path.join(HERE, "results", "serving.json"))
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    model_dir = served_model(args.run)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompts = [chat_text(tokenizer, [{"role": "user", "content": t}]) for t in INSTRUCTIONS]
    results = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.configs.split(","):
            results += measure(name, model_dir, prompts, args, work)

    def tps(config, clients):
        return next(r["tokens_per_s"] for r in results if r["config"] == config and r["clients"] == clients)

    summary = {}
    if {"pipeline", "triton_batching_int8"} <= set(args.configs.split(",")) and 8 in args.clients:
        summary["int8_batching_vs_pipeline_at_8"] = round(tps("triton_batching_int8", 8) / tps("pipeline", 8), 2)
    if {"triton", "triton_batching"} <= set(args.configs.split(",")) and 8 in args.clients:
        summary["batching_vs_unbatched_at_8"] = round(tps("triton_batching", 8) / tps("triton", 8), 2)
    config = json.load(open(os.path.join(model_dir, "config.json")))
    out = {
        "name": "serving",
        "results": results,
        "summary": summary,
        "goals": {"int8_batching_vs_pipeline_at_8": 3.0, "batching_vs_unbatched_at_8": 2.0},
        "model": {
            "dir": os.path.relpath(model_dir),
            "hidden_size": config["hidden_size"],
            "layers": config["num_hidden_layers"],
            "vocab_size": config["vocab_size"],
        },
        "max_tokens": args.max_tokens,
        "seconds_per_cell": args.seconds,
        "server_threads": args.threads,
    }
    write_result(args.out, out, "python benchmarks/serving.py " + " ".join(sys.argv[1:]))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
