"""Triton Inference Server: kollm's python-backend model and the repository that serves it.

`kollm_llm/1/model.py` is the model Triton runs (it imports kollm.generation and kollm.serve); it ships
as package data, so an installed kollm (not only a checkout) can write a repository:

    write_repository("model_repository/", "runs/tiny/align/grpo/model")   # -> ["kollm", "kollm_stream"]

Both models speak the llmapi contract of TensorRT-LLM's Triton model (kollm/serve/contract.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources

from kollm.core.errors import KollmError
from kollm.serve.contract import INPUTS, OUTPUTS, Limits

MODELS = {"kollm": False, "kollm_stream": True}  # name -> decoupled (streaming)


@dataclass
class RepositoryOptions:
    max_batch: int = 16  # requests generated together; 1 = one at a time
    queue_delay_us: int = 2000  # how long Triton's dynamic batcher waits to gather a batch
    quantization: str = ""  # "" or "dynamic_int8" (torch dynamic int8 nn.Linear, CPU)
    threads: int = 1
    limits: Limits = field(default_factory=Limits)


def _tensor(name: str, dtype: str, dims: list[int], optional: bool | None) -> str:
    opt = "" if optional is None else f" optional: {'true' if optional else 'false'}"
    return f'  {{ name: "{name}" data_type: {dtype} dims: [ {", ".join(map(str, dims))} ]{opt} }}'


def model_config(name: str, model_dir: str, decoupled: bool, opts: RepositoryOptions) -> str:
    batching = opts.max_batch > 1
    params = {
        "model_dir": os.path.abspath(model_dir),
        "max_batch": opts.max_batch,
        "threads": opts.threads,
        "quantization": opts.quantization,
        "max_tokens": opts.limits.max_tokens,
        "max_tokens_limit": opts.limits.max_tokens_limit,
        "max_prompt_chars": opts.limits.max_prompt_chars,
        "max_request_s": opts.limits.max_request_s,
    }
    lines = [f'name: "{name}"', 'backend: "python"', f"max_batch_size: {opts.max_batch if batching else 0}", "input ["]
    lines.append(",\n".join(_tensor(n, t, d, not req) for n, (t, d, req) in INPUTS.items()))
    lines += ["]", "output ["]
    lines.append(",\n".join(_tensor(n, t, d, None) for n, (t, d) in OUTPUTS.items()))
    lines += ["]", "instance_group [ { count: 1 kind: KIND_CPU } ]"]
    if batching:
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {opts.queue_delay_us} }}")
    if decoupled:
        lines.append("model_transaction_policy { decoupled: true }")
    lines += [f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}' for k, v in params.items()]
    return "\n".join(lines) + "\n"


def write_repository(repo_dir: str, model_dir: str, opts: RepositoryOptions | None = None) -> list[str]:
    opts = opts or RepositoryOptions()
    if not os.path.exists(os.path.join(model_dir, "config.json")):
        raise KollmError(f"{model_dir} is not a HF model directory (no config.json)")
    if opts.quantization not in ("", "dynamic_int8"):
        raise KollmError(f"quantization={opts.quantization!r}: choose '' or 'dynamic_int8'")
    model_py = resources.files(__name__).joinpath("kollm_llm", "1", "model.py").read_text(encoding="utf-8")
    for name, decoupled in MODELS.items():
        version = os.path.join(repo_dir, name, "1")
        os.makedirs(version, exist_ok=True)
        with open(os.path.join(version, "model.py"), "w", encoding="utf-8") as f:
            f.write(model_py)
        with open(os.path.join(repo_dir, name, "config.pbtxt"), "w") as f:
            f.write(model_config(name, model_dir, decoupled, opts))
    return list(MODELS)
