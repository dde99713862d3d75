"""TensorRT-LLM serving as NeMo Run tasks: `kollm trtllm ACTION` on the quantize stage's checkpoint.

    kollm trtllm triton preset=1b run.executor=slurm run.partition=gpu --dryrun   # Triton's llmapi model
    kollm trtllm serve trtllm.format=fp8 run.executor=docker                     # trtllm-serve (OpenAI API)
    kollm trtllm bench run.executor=docker                                       # trtllm-bench throughput

Writes <run>/trtllm/ (model.yaml, the LLM API options, the benchmark's Korean prompts) and runs the
command in `trtllm.container` (the NGC Triton + TensorRT-LLM image) on one GPU node: Docker here,
pyxis on Slurm, or `run.executor=local` inside that container. Needs an NVIDIA GPU to run; --dryrun
shows what would be launched anywhere.
"""

from __future__ import annotations

import os
import shlex

import nemo_run as run

import trtllm
from kollm.config import PipelineConfig
from kollm.core.errors import KollmError
from kollm.data import prompts
from recipes.executors import gpu_container, launch_script

ACTIONS = ("triton", "serve", "bench")


def checkpoint(cfg: PipelineConfig) -> str:
    """The quantize stage's folder for `trtllm.format`."""
    from kollm.core.io import read_json
    from stages.base import outputs_of
    from stages.quantize import QuantizeOutputs

    table = read_json(outputs_of(cfg.run_dir, QuantizeOutputs).table)
    checkpoints = {row["format"]: row["dir"] for row in table["formats"] if row["dir"]}
    if cfg.trtllm.format not in checkpoints:
        raise KollmError(
            f"trtllm.format={cfg.trtllm.format!r}: the quantize stage wrote {', '.join(sorted(checkpoints))}"
        )
    return checkpoints[cfg.trtllm.format]


def command(cfg: PipelineConfig, action: str) -> tuple[str, dict]:
    """The shell command for `action` and the files it reads (written now)."""
    if action not in ACTIONS:
        raise KollmError(f"unknown trtllm action {action!r}; choose one of: {', '.join(ACTIONS)}")
    model_dir = checkpoint(cfg)
    out = os.path.join(os.path.abspath(cfg.run_dir), "trtllm")
    files = trtllm.write_files(out, model_dir, cfg.trtllm, list(prompts.GENERATION_PROMPTS))
    if action == "triton":
        return trtllm.triton_command(os.path.join(out, "model_repository"), cfg.trtllm), files
    argv = (
        trtllm.serve_command(model_dir, files["options"], cfg.trtllm)
        if action == "serve"
        else trtllm.bench_command(model_dir, files["dataset"], files["options"], cfg.trtllm)
    )
    return shlex.join(argv), files


def launch(cfg: PipelineConfig, action: str, dryrun: bool = False) -> dict:
    script, files = command(cfg, action)
    executor = gpu_container(
        cfg,
        cfg.trtllm.container,
        "TensorRT-LLM serving here uses one node (tensor/pipeline parallel within it); set run.nodes=1",
    )
    return {
        "command": script,
        **files,
        **launch_script(f"trtllm-{action}", executor, run.Script(inline=script), dryrun),
    }
