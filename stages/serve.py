"""Serve the aligned model from a real tritonserver on 127.0.0.1; ask it over HTTP and gRPC streaming.

Writes a Triton model repository (triton_model_repo/, python backend), starts the server, asks
a Korean prompt both ways, then stops it (serve.keep_running=true leaves it up).

Runs in the serve environment (.venv-serve), like NVIDIA's separate Triton container.
"""

from __future__ import annotations

import os
import time

from kollm.config import PipelineConfig
from kollm.curation.korean import hangul_ratio, normalize
from stages.base import inputs


def run(cfg: PipelineConfig, out: str) -> dict:
    from kollm.serve.client import generate_grpc_stream, generate_http
    from kollm.serve.server import TritonServer
    from triton_model_repo import write_repository

    s = cfg.serve
    model_dir = inputs(cfg, "align")["model_dir"]
    repo = os.path.join(out, "model_repository")
    models = write_repository(repo, model_dir, max_new_tokens=s.max_new_tokens)
    server = TritonServer(repo, out, http_port=s.http_port, grpc_port=s.grpc_port, metrics_port=s.metrics_port)
    t0 = time.perf_counter()
    server.start(timeout_s=s.startup_timeout_s)
    startup_s = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        http_text = generate_http(server.http_url, s.prompt, s.max_new_tokens)
        http_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pieces = generate_grpc_stream(server.grpc_url, s.prompt, s.max_new_tokens)
        grpc_s = time.perf_counter() - t0
    finally:
        if not s.keep_running:
            code = server.stop()
    grpc_text = "".join(pieces)
    answers = {
        "http": {"text": http_text, "hangul_share": round(hangul_ratio(normalize(http_text)), 3), "latency_s": round(http_s, 3)},
        "grpc_stream": {"text": grpc_text, "pieces": len(pieces), "hangul_share": round(hangul_ratio(normalize(grpc_text)), 3),
                        "latency_s": round(grpc_s, 3), "has_replacement_char": "\ufffd" in grpc_text},
    }
    return {
        "outputs": {"model_repository": os.path.abspath(repo), "server_log": os.path.abspath(server.log_path)},
        "server": {"http": server.http_url, "grpc": server.grpc_url, "models": models, "startup_s": round(startup_s, 2),
                   "stopped": not s.keep_running, "exit_code": None if s.keep_running else code},
        "prompt": s.prompt,
        "answers": answers,
        "counts": {"models": len(models), "stream_pieces": len(pieces)},
    }
