"""Triton Inference Server: kollm's python-backend model and the repository that serves it.

`kollm_llm/1/model.py` is the model Triton runs (it imports kollm.serve for generation); it ships
as package data, so an installed kollm (not only a checkout) can write a repository:

    write_repository("model_repository/", "runs/tiny/align/model")   # -> ["kollm", "kollm_stream"]
"""

from __future__ import annotations

import os
from importlib import resources

CONFIG = """name: "{name}"
backend: "python"
max_batch_size: 0
input [
  {{ name: "prompt" data_type: TYPE_STRING dims: [ 1 ] }},
  {{ name: "max_new_tokens" data_type: TYPE_INT32 dims: [ 1 ] optional: true }},
  {{ name: "min_new_tokens" data_type: TYPE_INT32 dims: [ 1 ] optional: true }}
]
output [
  {{ name: "text" data_type: TYPE_STRING dims: [ 1 ] }}
]
instance_group [ {{ count: 1 kind: KIND_CPU }} ]
{policy}parameters {{ key: "model_dir" value: {{ string_value: "{model_dir}" }} }}
parameters {{ key: "max_new_tokens" value: {{ string_value: "{max_new_tokens}" }} }}
parameters {{ key: "threads" value: {{ string_value: "{threads}" }} }}
"""

MODELS = {"kollm": False, "kollm_stream": True}  # name -> decoupled (streaming)


def write_repository(repo_dir: str, model_dir: str, max_new_tokens: int = 64, threads: int = 1) -> list[str]:
    if not os.path.exists(os.path.join(model_dir, "config.json")):
        raise FileNotFoundError(f"{model_dir} is not a HF model directory (no config.json)")
    model_py = resources.files(__name__).joinpath("kollm_llm", "1", "model.py").read_text(encoding="utf-8")
    for name, decoupled in MODELS.items():
        version = os.path.join(repo_dir, name, "1")
        os.makedirs(version, exist_ok=True)
        with open(os.path.join(version, "model.py"), "w", encoding="utf-8") as f:
            f.write(model_py)
        policy = "model_transaction_policy { decoupled: true }\n" if decoupled else ""
        with open(os.path.join(repo_dir, name, "config.pbtxt"), "w") as f:
            f.write(CONFIG.format(name=name, policy=policy, model_dir=os.path.abspath(model_dir),
                                  max_new_tokens=max_new_tokens, threads=threads))
    return list(MODELS)
