"""The request/response contract of TensorRT-LLM's llmapi Triton model, which kollm's CPU model also speaks.

One table of tensors serves three readers: the CPU model's config.pbtxt (triton_model_repo), the request
parser the CPU model runs (`parse_request`), and the clients (client.py). Names, datatypes and meanings
follow `NVIDIA/TensorRT-LLM:triton_backend/all_models/llmapi/tensorrt_llm/config.pbtxt`, so a client
written for one answers from the other. Inputs the CPU model cannot honour (LoRA, images, best_of > 1)
are declared too and refused with a clear 400, as a contract should be. `text_output` is the generated
text only (the LLM API's `CompletionOutput.text`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kollm.generation.sampling import InvalidRequest, SamplingParams

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
CLIENT_TYPES = {
    "TYPE_STRING": ("BYTES", np.object_),
    "TYPE_BOOL": ("BOOL", np.bool_),
    "TYPE_INT32": ("INT32", np.int32),
    "TYPE_UINT64": ("UINT64", np.uint64),
    "TYPE_FP32": ("FP32", np.float32),
}
SAMPLING_FIELDS = {
    "temperature": float,
    "top_k": int,
    "top_p": float,
    "frequency_penalty": float,
    "presence_penalty": float,
    "max_tokens": int,
    "seed": int,
    "min_tokens": int,
}


@dataclass
class Limits:
    """What the server allows; the CPU model's config.pbtxt parameters."""

    max_tokens: int = 64  # when the request names none
    max_tokens_limit: int = 512
    max_prompt_chars: int = 8192
    # a unary answer that takes longer is ended with an error: HTTP gives the model no sign that its client
    # left, so this bounds the work a departed client leaves behind (streams and gRPC are cancelled instead)
    max_request_s: float = 60.0


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


def closest_input(name: str) -> str | None:
    """The contract input a misspelt or shortened field most likely meant (`max_tokens` -> sampling_param_...)."""
    part = [n for n in INPUTS if n.endswith("_" + name) or n.startswith(name + "_")]
    if part:
        return part[0]
    # compared without the shared prefix, which would make every sampling_param_* look alike
    short = {n.removeprefix("sampling_param_"): n for n in INPUTS}
    close = difflib.get_close_matches(name.removeprefix("sampling_param_"), short, n=1, cutoff=0.75)
    return short[close[0]] if close else None


def check_parameters(parameters: dict) -> None:
    """Refuses request parameters the model does not read. Triton hands every field of a `/generate` body that
    is not an input to the model as a request parameter, so a misspelt input arrives here instead of as an input,
    and would otherwise be ignored. Triton's own parameters (`triton_*`, priority, timeout, ...) never reach
    the model."""
    unknown = [key for key in parameters if not key.startswith("triton_")]
    if not unknown:
        return
    key = unknown[0]
    guess = closest_input(key)
    hint = f"did you mean {guess!r}? " if guess else ""
    raise InvalidRequest(
        f"unknown field {key!r}: {hint}this model reads only its inputs "
        f"(text_input, streaming, sampling_param_*, return_finish_reason, ...; "
        f"GET /v2/models/kollm lists them)"
    )


def _int32(name: str, value):
    """Triton's JSON reader wraps an integer above 2**31 - 1 in an INT32 input (3000000000 arrives as
    -1294967296): report the number the user most likely sent, not the wrapped one."""
    if isinstance(value, int) and value < -(2**30):
        raise InvalidRequest(
            f"{name}={value + 2**32} is out of range: it does not fit its INT32 input (at most "
            f"2147483647; Triton's JSON reader wrapped it to {value})"
        )
    return value


def parse_request(
    get: Callable[[str], np.ndarray | None],
    limits: Limits,
    defaults: SamplingParams | None = None,
    parameters: dict | None = None,
) -> ParsedRequest:
    """Reads one request through `get(name) -> numpy array or None` and its request parameters;
    raises InvalidRequest on a user mistake."""
    check_parameters(parameters or {})
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
            if INPUTS[f"sampling_param_{name}"][0] == "TYPE_INT32":
                value = _int32(f"sampling_param_{name}", value)
            setattr(params, name, kind(value))
    stop = get("sampling_param_stop")
    if stop is not None:
        params.stop = [_text(s, "sampling_param_stop") for s in np.asarray(stop).reshape(-1)]
    params.check(limits.max_tokens_limit)
    return ParsedRequest(
        prompt,
        params,
        streaming=bool(_scalar(get, "streaming")),
        return_finish_reason=bool(_scalar(get, "return_finish_reason")),
        return_stop_reason=bool(_scalar(get, "return_stop_reason")),
    )
