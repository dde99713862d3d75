"""A stage as a NeMo Run task, derived from its declaration (stages/__init__.py).

Training-environment stages are `run.Partial`s of `stages.runner.main` with the typed config
as a `run.Config`; serving-environment stages are a `run.Script` under that environment's
interpreter (tritonserver/tritonclient live there, as in NVIDIA's separate Triton container),
handed the config as the run's config.json.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import nemo_run as run

from kollm.config import PipelineConfig
from kollm.core.io import write_json
from kollm.data.sources import repo_root
from stages import by_name
from stages.runner import main as stage_main


def to_run_config(obj):
    """A dataclass instance -> an equivalent (nested) run.Config."""
    kwargs = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        kwargs[f.name] = to_run_config(value) if dataclasses.is_dataclass(value) else value
    return run.Config(type(obj), **kwargs)


def write_config(cfg: PipelineConfig) -> str:
    """The run's config.json (what `kollm stage NAME --config` reads): written once per launch, here."""
    path = os.path.abspath(os.path.join(cfg.run_dir, "config.json"))
    write_json(path, dataclasses.asdict(cfg))
    return path


def serve_python(cfg: PipelineConfig) -> str:
    if cfg.serve.python:
        return cfg.serve.python
    candidate = os.path.join(repo_root(), ".venv-serve", "bin", "python")
    return candidate if os.path.exists(candidate) else sys.executable


def task(name: str, cfg: PipelineConfig, config_file: str) -> run.Partial | run.Script:
    """The NeMo Run task that runs stage `name` with `cfg` (saved at `config_file`) in its environment."""
    stage = by_name(name)
    if stage.env == "serve":
        return run.Script(
            path="recipes.cli",
            m=True,
            entrypoint=serve_python(cfg),
            args=["stage", stage.name, "--config", config_file],
        )
    return run.Partial(stage_main, stage=stage.name, cfg=to_run_config(cfg))
