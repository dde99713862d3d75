"""What a stage is, and the one way a stage reads another's results: the manifest.

Every stage writes `<run_dir>/<stage>/manifest.json` when it completes (stages.runner); the paths it
produced are in its "outputs". A later stage asks for them by name:

    model_dir = inputs(cfg, "pretrain")["model_dir"]

and gets the path the pretrain stage recorded. No stage rebuilds another stage's paths: only
`stage_dir` below knows where a stage's folder is, and only the runner calls it.
"""

from __future__ import annotations

import contextvars
import dataclasses
import inspect
import json
import os
import sys
from collections.abc import Callable
from typing import Literal

from kollm.config import PipelineConfig
from kollm.core import KollmError, read_json


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of the pipeline, declared once (stages/__init__.py); the runner, the NeMo Run tasks,
    the CLI and `kollm run --help` all read this declaration."""

    name: str
    run: Callable[[PipelineConfig, str], dict]  # (config, its output folder) -> manifest body with "outputs"
    outputs: tuple[str, ...]  # names of the paths its manifest records: what later stages may ask for
    upstream: tuple[str, ...] = ()  # stages it reads; it refuses to start until their manifests are complete
    sections: tuple[str, ...] = ()  # config sections its result depends on; () = the section named like it
    env: Literal["train", "serve"] = "train"  # .venv (NeMo Run, training) or .venv-serve (Triton)
    # when this says so (e.g. a corpus given in the config), the stage reads no upstream stage
    standalone: Callable[[PipelineConfig], bool] | None = None
    # checks that need nothing but the config (e.g. free ports), run before the runner touches the stage's
    # folder: a stage that cannot start must leave its last complete manifest in place
    preflight: Callable[[PipelineConfig], None] | None = None

    @property
    def config_sections(self) -> tuple[str, ...]:
        return self.sections or (self.name,)

    def reads(self, cfg: PipelineConfig) -> tuple[str, ...]:
        """The upstream stages this run of the stage reads."""
        return () if self.standalone and self.standalone(cfg) else self.upstream

    @property
    def about(self) -> str:
        """One line on what it does: the first line of its module's docstring."""
        doc = inspect.getdoc(sys.modules[self.run.__module__]) or ""
        return doc.splitlines()[0] if doc else ""


def stage_dir(cfg: PipelineConfig, stage: str) -> str:
    """Where a stage's outputs live: for the runner (and manifests), never for other stages."""
    return os.path.join(cfg.run_dir, stage)


def manifest_path(cfg: PipelineConfig, stage: str) -> str:
    return os.path.join(stage_dir(cfg, stage), "manifest.json")


def load_manifest(cfg: PipelineConfig, stage: str) -> dict | None:
    """The manifest of a completed stage, or None (never run, running, failed, or unreadable)."""
    path = manifest_path(cfg, stage)
    if not os.path.exists(path):
        return None
    try:
        manifest = read_json(path)
    except (OSError, json.JSONDecodeError):
        return None
    return manifest if manifest.get("status") == "complete" else None


def require(cfg: PipelineConfig, stage: str) -> dict:
    """The complete manifest of an upstream stage, or a KollmError telling what to run."""
    manifest = load_manifest(cfg, stage)
    if manifest is None:
        raise KollmError(
            f"stage {stage!r} has not completed in {cfg.run_dir}; "
            f"run `kollm run {stage} preset={cfg.preset} run.name={cfg.run.name or cfg.preset}` first"
        )
    return manifest


# the stage the runner is running in this process: `inputs` lets it read only what it declared
running: contextvars.ContextVar[Stage | None] = contextvars.ContextVar("running", default=None)


def inputs(cfg: PipelineConfig, stage: str) -> dict[str, str]:
    """The outputs an upstream stage recorded in its manifest (name -> path)."""
    current = running.get()
    if current is not None and stage not in current.upstream:
        raise RuntimeError(
            f"stage {current.name!r} reads {stage!r}, which its declaration does not list "
            f"as upstream {current.upstream}: add it there"
        )
    return require(cfg, stage)["outputs"]
