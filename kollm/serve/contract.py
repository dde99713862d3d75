"""The request/response contract of TensorRT-LLM's llmapi Triton model, which kollm's CPU model also speaks.

One table of tensors serves three readers: the CPU model's config.pbtxt (triton_model_repo), the request
parser the CPU model runs (`parse_request`), and the clients (client.py). Names, datatypes and meanings
follow `NVIDIA/TensorRT-LLM:triton_backend/all_models/llmapi/tensorrt_llm/config.pbtxt`, so a client
written for one answers from the other. Inputs the CPU model cannot honour (LoRA, images, best_of > 1)
are declared too and refused with a clear 400, as a contract should be. `text_output` is the generated
text only (the LLM API's `CompletionOutput.text`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from kollm.serve.sampling import InvalidRequest, SamplingParams

# name: (Triton datatype, dims, required)
INPUTS: dict[str, tuple[str, list[int], bool]] = {
    "text_input": ("TYPE_STRING", [1], True),
    "streaming": ("TYPE_BOOL", [1], False),
    "image_url": ("TYPE_STRING", [-1], False),
    "sampling_param_best_of": ("TYPE_INT32", [1], False),
    "sampling_param_temperature": ("TYPE_FP32", [1], False),
    "sampling_param_top_k": ("TYPE_INT32", [1], False),
    "sampling_param_top_p": ("TYPE_FP32", [1], False),
    "sampling_param_frequency_penalty": ("TYPE_FP32", [1], False),
    "sampling_param_presence_penalty": ("TYPE_FP32", [1], False),
    "sampling_param_max_tokens": ("TYPE_INT32", [1], False),
    "sampling_param_stop": ("TYPE_STRING", [-1], False),
    "sampling_param_seed": ("TYPE_UINT64", [1], False),
    # kollm's extension: TensorRT-LLM's SamplingParams has min_tokens, its Triton model does not read it
    "sampling_param_min_tokens": ("TYPE_INT32", [1], False),
    "return_finish_reason": ("TYPE_BOOL", [1], False),
    "return_stop_reason": ("TYPE_BOOL", [1], False),
    "stop": ("TYPE_BOOL", [1], False),
    "lora_id": ("TYPE_UINT64", [1], False),
    "lora_name": ("TYPE_STRING", [1], False),
    "lora_path": ("TYPE_STRING", [1], False),
}
OUTPUTS: dict[str, tuple[str, list[int]]] = {
    "text_output": ("TYPE_STRING", [-1]),
    "finish_reason": ("TYPE_STRING", [-1]),
    "stop_reason": ("TYPE_STRING", [-1]),
}
# Triton datatype -> the tritonclient datatype and numpy dtype a client sends
CLIENT_TYPES = {"TYPE_STRING": ("BYTES", np.object_), "TYPE_BOOL": ("BOOL", np.bool_),
                "TYPE_INT32": ("INT32", np.int32), "TYPE_UINT64": ("UINT64", np.uint64),
                "TYPE_FP32": ("FP32", np.float32)}
SAMPLING_FIELDS = {"temperature": float, "top_k": int, "top_p": float, "frequency_penalty": float,
                   "presence_penalty": float, "max_tokens": int, "seed": int, "min_tokens": int}


@dataclass
class Limits:
    """What the server allows; the CPU model's config.pbtxt parameters."""
    max_tokens: int = 64  # when the request names none
    max_tokens_limit: int = 512
    max_prompt_chars: int = 8192


@dataclass
class ParsedRequest:
    prompt: str
    params: SamplingParams
    streaming: bool = False
    stop_request: bool = False
    return_finish_reason: bool = False
    return_stop_reason: bool = False


def _scalar(get: Callable[[str], np.ndarray | None], name: str):
    value = get(name)
    if value is None:
        return None
    flat = np.asarray(value).reshape(-1)
    if flat.size != 1:
        raise InvalidRequest(f"{name} must hold one value per request, got {flat.size}")
    return flat[0].item() if hasattr(flat[0], "item") else flat[0]


def _text(raw, name: str) -> str:
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidRequest(f"{name} is not valid UTF-8 (byte {e.start})") from None
    return str(raw)


def parse_request(get: Callable[[str], np.ndarray | None], limits: Limits,
                  defaults: SamplingParams | None = None) -> ParsedRequest:
    """Reads one request through `get(name) -> numpy array or None`; raises InvalidRequest on a user mistake."""
    if _scalar(get, "stop"):
        return ParsedRequest("", SamplingParams(), stop_request=True)
    for name in ("image_url", "lora_id", "lora_name", "lora_path"):
        if get(name) is not None:
            raise InvalidRequest(f"{name} is not supported by this model (a text-only model without LoRA serving)")
    best_of = _scalar(get, "sampling_param_best_of")
    if best_of not in (None, 1):
        raise InvalidRequest(f"sampling_param_best_of={best_of} is not supported; only 1")
    raw = _scalar(get, "text_input")
    if raw is None:
        raise InvalidRequest("text_input is required")
    prompt = _text(raw, "text_input")
    if not prompt.strip():
        raise InvalidRequest("text_input is empty")
    if len(prompt) > limits.max_prompt_chars:
        raise InvalidRequest(f"text_input has {len(prompt):,} characters; the limit is {limits.max_prompt_chars:,}")
    params = SamplingParams(**vars(defaults)) if defaults else SamplingParams(max_tokens=limits.max_tokens)
    for name, kind in SAMPLING_FIELDS.items():
        value = _scalar(get, f"sampling_param_{name}")
        if value is not None:
            setattr(params, name, kind(value))
    stop = get("sampling_param_stop")
    if stop is not None:
        params.stop = [_text(s, "sampling_param_stop") for s in np.asarray(stop).reshape(-1)]
    params.check(limits.max_tokens_limit)
    return ParsedRequest(prompt, params, streaming=bool(_scalar(get, "streaming")),
                         return_finish_reason=bool(_scalar(get, "return_finish_reason")),
                         return_stop_reason=bool(_scalar(get, "return_stop_reason")))
