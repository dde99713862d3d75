"""Clients for the kollm Triton models: HTTP request/response and gRPC streaming."""

from __future__ import annotations

import queue
import time

import numpy as np


def _inputs(module, prompt: str, max_new_tokens: int, min_new_tokens: int = 1):
    p = module.InferInput("prompt", [1], "BYTES")
    p.set_data_from_numpy(np.array([prompt.encode("utf-8")], dtype=np.object_))
    limits = []
    for name, value in (("max_new_tokens", max_new_tokens), ("min_new_tokens", min_new_tokens)):
        t = module.InferInput(name, [1], "INT32")
        t.set_data_from_numpy(np.array([value], dtype=np.int32))
        limits.append(t)
    return [p, *limits]


def generate_http(url: str, prompt: str, max_new_tokens: int = 32, model: str = "kollm", timeout: float = 120,
                  min_new_tokens: int = 1) -> str:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=url, network_timeout=timeout, connection_timeout=timeout)
    try:
        result = client.infer(model, _inputs(httpclient, prompt, max_new_tokens, min_new_tokens),
                              outputs=[httpclient.InferRequestedOutput("text")])
        return result.as_numpy("text").reshape(-1)[0].decode("utf-8")
    finally:
        client.close()


def generate_grpc_stream(url: str, prompt: str, max_new_tokens: int = 32, model: str = "kollm_stream",
                         timeout: float = 120, min_new_tokens: int = 1) -> list[str]:
    """Returns the streamed pieces in arrival order (join them for the full answer)."""
    import tritonclient.grpc as grpcclient

    events: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(url=url)
    client.start_stream(callback=lambda result, error: events.put((result, error)))
    pieces = []
    try:
        client.async_stream_infer(model, _inputs(grpcclient, prompt, max_new_tokens, min_new_tokens),
                                  outputs=[grpcclient.InferRequestedOutput("text")],
                                  enable_empty_final_response=True)
        deadline = time.time() + timeout
        while True:
            result, error = events.get(timeout=max(0.1, deadline - time.time()))
            if error is not None:
                raise RuntimeError(f"triton stream error: {error}")
            response = result.get_response()
            if response.outputs:
                pieces.append(result.as_numpy("text").reshape(-1)[0].decode("utf-8"))
            if response.parameters.get("triton_final_response") and response.parameters["triton_final_response"].bool_param:
                break
    finally:
        client.stop_stream()
        client.close()
    return pieces
