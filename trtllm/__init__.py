"""TensorRT-LLM on GPU hosts: the files and command lines that serve kollm's quantised checkpoints.

TensorRT-LLM removed its TensorRT-engine backend in 2026 (no `trtllm-build`, no `convert_checkpoint.py`,
no `inflight_batcher_llm`). What is left, and what this writes for a run's quantize stage output:
- Triton's `llmapi` model (`triton_backend/all_models/llmapi/tensorrt_llm` in TensorRT-LLM): a python-backend
  model running `LLM(**model.yaml)` on the PyTorch backend; this writes its `model.yaml`, the rest
  (config.pbtxt, model.py, helpers.py) is copied from TensorRT-LLM's own source in the container;
- `trtllm-serve` (OpenAI-compatible) with a `--config` YAML of LLM API options;
- `trtllm-bench throughput` on a dataset of Korean prompts.
The CPU Triton model speaks the llmapi model's request contract, so kollm's clients work against both.
None of this runs on a machine without an NVIDIA GPU; recipes/trtllm.py launches it in the container.
"""

from __future__ import annotations

import json
import os
import shlex

from kollm.config import TrtllmConfig
from kollm.core.errors import KollmError

LLMAPI_MODEL = "triton_backend/all_models/llmapi/tensorrt_llm"  # inside a TensorRT-LLM checkout
LAUNCHER = "triton_backend/scripts/launch_triton_server.py"


def check_checkpoint(model_dir: str) -> None:
    if not os.path.isfile(os.path.join(model_dir, "config.json")):
        raise KollmError(
            f"{model_dir}: not a HF checkpoint folder (no config.json); the quantize stage writes "
            "one per format (kollm run quantize ...)"
        )


def _yaml(data: dict, indent: int = 0) -> str:
    """YAML for the nested dicts of scalars written here (json scalars are valid YAML)."""
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(" " * indent + f"{key}:")
            lines.append(_yaml(value, indent + 2))
        else:
            lines.append(" " * indent + f"{key}: {json.dumps(value)}")
    return "\n".join(lines)


def llm_api_options(t: TrtllmConfig) -> dict:
    """The LLM API arguments shared by model.yaml, trtllm-serve --config and trtllm-bench --config."""
    return {
        "kv_cache_config": {"free_gpu_memory_fraction": t.kv_cache_free_gpu_memory_fraction},
        "max_batch_size": t.max_batch_size,
        "max_num_tokens": t.max_num_tokens,
    }


def model_yaml(model_dir: str, t: TrtllmConfig) -> str:
    """The llmapi Triton model's model.yaml: every key but triton_config goes to `LLM()`."""
    check_checkpoint(model_dir)
    body = {
        "model": os.path.abspath(model_dir),
        "backend": "pytorch",
        "tensor_parallel_size": t.tensor_parallel_size,
        "pipeline_parallel_size": t.pipeline_parallel_size,
        **llm_api_options(t),
        # the llmapi model batches inside the LLM API (in-flight batching), not through Triton's batcher
        "triton_config": {"max_batch_size": 0, "decoupled": t.decoupled},
    }
    return (
        "# written by kollm (trtllm/__init__.py): Triton's llmapi model, TensorRT-LLM PyTorch backend\n"
        + _yaml(body)
        + "\n"
    )


def write_files(out_dir: str, model_dir: str, t: TrtllmConfig, prompts: list[str]) -> dict[str, str]:
    """model.yaml (in a repository folder), the LLM API options YAML and the trtllm-bench dataset."""
    repo = os.path.join(out_dir, "model_repository", "tensorrt_llm", "1")
    os.makedirs(repo, exist_ok=True)
    files = {
        "model_yaml": os.path.join(repo, "model.yaml"),
        "options": os.path.join(out_dir, "llm_api_options.yaml"),
        "dataset": os.path.join(out_dir, "bench_dataset.jsonl"),
    }
    with open(files["model_yaml"], "w") as f:
        f.write(model_yaml(model_dir, t))
    with open(files["options"], "w") as f:
        f.write(_yaml(llm_api_options(t)) + "\n")
    with open(files["dataset"], "w", encoding="utf-8") as f:  # trtllm-bench's dataset: one request per line
        for i, prompt in enumerate(prompts):
            f.write(
                json.dumps({"task_id": i, "prompt": prompt, "output_tokens": t.bench_output_tokens}, ensure_ascii=False)
                + "\n"
            )
    return files


def serve_command(model_dir: str, options: str, t: TrtllmConfig) -> list[str]:
    """OpenAI-compatible server on the quantised checkpoint (`/v1/completions`, `/v1/chat/completions`)."""
    return [
        "trtllm-serve",
        os.path.abspath(model_dir),
        "--backend",
        "pytorch",
        "--host",
        t.host,
        "--port",
        str(t.port),
        "--tp_size",
        str(t.tensor_parallel_size),
        "--pp_size",
        str(t.pipeline_parallel_size),
        "--max_batch_size",
        str(t.max_batch_size),
        "--config",
        os.path.abspath(options),
    ]


def bench_command(model_dir: str, dataset: str, options: str, t: TrtllmConfig) -> list[str]:
    return [
        "trtllm-bench",
        "--model",
        os.path.basename(os.path.abspath(model_dir)),
        "--model_path",
        os.path.abspath(model_dir),
        "throughput",
        "--backend",
        "pytorch",
        "--dataset",
        os.path.abspath(dataset),
        "--tp",
        str(t.tensor_parallel_size),
        "--pp",
        str(t.pipeline_parallel_size),
        "--max_batch_size",
        str(t.max_batch_size),
        "--config",
        os.path.abspath(options),
    ]


def triton_command(repo_dir: str, t: TrtllmConfig) -> str:
    """Copy the llmapi model's code from TensorRT-LLM's checkout beside kollm's model.yaml, then launch Triton."""
    src = os.path.join(t.source_dir, LLMAPI_MODEL)
    repo = os.path.abspath(repo_dir)
    return " && ".join(
        [
            f"test -d {shlex.quote(src)} || {{ echo 'no TensorRT-LLM checkout at {t.source_dir} "
            f"(git clone https://github.com/NVIDIA/TensorRT-LLM, or set trtllm.source_dir)' >&2; exit 2; }}",
            f"cp {shlex.quote(src)}/config.pbtxt {shlex.quote(repo)}/tensorrt_llm/",
            f"cp {shlex.quote(src)}/1/model.py {shlex.quote(src)}/1/helpers.py {shlex.quote(repo)}/tensorrt_llm/1/",
            f"cd {shlex.quote(os.path.dirname(os.path.abspath(t.source_dir)))}",
            f"python3 {shlex.quote(os.path.join(os.path.basename(os.path.abspath(t.source_dir)), LAUNCHER))} "
            f"--model_repo={shlex.quote(repo)} --world_size={t.tensor_parallel_size * t.pipeline_parallel_size}",
        ]
    )
