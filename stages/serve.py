"""Serve the aligned model from a real tritonserver on 127.0.0.1; ask it over HTTP and gRPC streaming.

Writes a Triton model repository (triton_model_repo/: the python-backend model speaking TensorRT-LLM's
llmapi contract, with dynamic batching), starts the server, asks a Korean prompt over HTTP and as a gRPC
stream, then stops it (serve.keep_running=true leaves it up).

Runs in the serve environment (.venv-serve), like NVIDIA's separate Triton container.
"""

from __future__ import annotations

import dataclasses
import os
import time

from kollm.config import PipelineConfig
from kollm.curation import hangul_ratio, normalize
from stages.base import Outputs, the


@dataclasses.dataclass(frozen=True)
class ServeOutputs(Outputs):
    model_repository: str  # the Triton model repository it served (`tritonserver --model-repository`)
    server_log: str  # the server's log


def preflight(cfg: PipelineConfig) -> None:
    """Ports the config names that another process holds (a server left running by serve.keep_running=true):
    one line, before the runner removes this stage's manifest."""
    from kollm.serve import check_ports

    s = cfg.serve
    check_ports(
        "127.0.0.1",
        {"serve.http_port": s.http_port, "serve.grpc_port": s.grpc_port, "serve.metrics_port": s.metrics_port},
    )


def run(cfg: PipelineConfig, out: str) -> dict:
    from transformers import AutoTokenizer

    from kollm.generation import chat_text
    from kollm.serve import Limits, LLMClient, TritonServer
    from triton_model_repo import RepositoryOptions, write_repository

    s = cfg.serve
    model_dir = the(cfg, "model")
    repo = os.path.join(out, "model_repository")
    opts = RepositoryOptions(
        max_batch=s.max_batch,
        quantization=s.quantization,
        limits=Limits(max_tokens=s.max_new_tokens, max_request_s=s.max_request_s),
    )
    models = write_repository(repo, model_dir, opts)
    # the llmapi contract takes the prompt as text: the client renders the chat template, as for TensorRT-LLM
    prompt = chat_text(AutoTokenizer.from_pretrained(model_dir), [{"role": "user", "content": s.prompt}])
    server = TritonServer(repo, out, http_port=s.http_port, grpc_port=s.grpc_port, metrics_port=s.metrics_port)
    t0 = time.perf_counter()
    server.start(timeout_s=s.startup_timeout_s)
    startup_s = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        http = LLMClient(server.http_url).generate(prompt, max_tokens=s.max_new_tokens, min_tokens=s.min_new_tokens)
        http_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        grpc = LLMClient(server.grpc_url, protocol="grpc")
        pieces = list(grpc.stream(prompt, max_tokens=s.max_new_tokens, min_tokens=s.min_new_tokens))
        grpc_s = time.perf_counter() - t0
    finally:
        if not s.keep_running:
            code = server.stop()
    grpc_text = "".join(pieces)
    answers = {
        "http": {
            "text": http.text,
            "finish_reason": http.finish_reason,
            "hangul_share": round(hangul_ratio(normalize(http.text)), 3),
            "latency_s": round(http_s, 3),
        },
        "grpc_stream": {
            "text": grpc_text,
            "pieces": len(pieces),
            "finish_reason": grpc.last.finish_reason,
            "hangul_share": round(hangul_ratio(normalize(grpc_text)), 3),
            "latency_s": round(grpc_s, 3),
            "has_replacement_char": "\ufffd" in grpc_text,
        },
    }
    return {
        "outputs": ServeOutputs(model_repository=os.path.abspath(repo), server_log=os.path.abspath(server.log_path)),
        "server": {
            "http": server.http_url,
            "grpc": server.grpc_url,
            "models": models,
            "startup_s": round(startup_s, 2),
            "stopped": not s.keep_running,
            "exit_code": None if s.keep_running else code,
            "quantization": s.quantization or "none (fp32)",
        },
        "prompt": s.prompt,
        "min_new_tokens": s.min_new_tokens,
        "answers": answers,
        "counts": {"models": len(models), "stream_pieces": len(pieces)},
    }
