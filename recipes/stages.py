"""One recipe per stage. Each returns the NeMo Run task that runs `kollm.stages.<name>`.

Training-environment stages are `run.Partial`s of `kollm.stages.runner.main` with the
typed config as a `run.Config`; the serve stage is a `run.Script` under the serving
environment's interpreter (tritonserver/tritonclient live there, as in NVIDIA's
separate Triton container).
"""

from __future__ import annotations

import dataclasses
import os
import sys

import nemo_run as run

from kollm.config import PipelineConfig
from kollm.data.sources import repo_root
from kollm.io import write_json
from kollm.stages import STAGES
from kollm.stages.runner import main as stage_main


def to_run_config(obj):
    """A dataclass instance -> an equivalent (nested) run.Config."""
    kwargs = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        kwargs[f.name] = to_run_config(value) if dataclasses.is_dataclass(value) else value
    return run.Config(type(obj), **kwargs)


def stage_partial(name: str, cfg: PipelineConfig) -> run.Partial:
    return run.Partial(stage_main, stage=name, cfg=to_run_config(cfg))


def data(cfg: PipelineConfig) -> run.Partial:
    return stage_partial("data", cfg)


def curate(cfg: PipelineConfig) -> run.Partial:
    return stage_partial("curate", cfg)


def tokenizer(cfg: PipelineConfig) -> run.Partial:
    return stage_partial("tokenizer", cfg)


def pretrain(cfg: PipelineConfig) -> run.Partial:
    return stage_partial("pretrain", cfg)


def finetune(cfg: PipelineConfig) -> run.Partial:
    return stage_partial("finetune", cfg)


def align(cfg: PipelineConfig) -> run.Partial:
    return stage_partial("align", cfg)


def evaluate(cfg: PipelineConfig) -> run.Partial:
    return stage_partial("evaluate", cfg)


def serve_python(cfg: PipelineConfig) -> str:
    if cfg.serve.python:
        return cfg.serve.python
    candidate = os.path.join(repo_root(), ".venv-serve", "bin", "python")
    return candidate if os.path.exists(candidate) else sys.executable


def serve(cfg: PipelineConfig) -> run.Script:
    config_path = os.path.abspath(os.path.join(cfg.run_dir, "config.json"))
    write_json(config_path, dataclasses.asdict(cfg))
    return run.Script(path="kollm.cli", m=True, entrypoint=serve_python(cfg),
                      args=["stage", "serve", "--config", config_path])


RECIPES = {name: globals()[name] for name in STAGES}
