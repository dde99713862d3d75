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


def _never(cfg: PipelineConfig) -> bool:
    return False


@dataclasses.dataclass(frozen=True)
class Launch:
    """How a stage's job is launched when it runs alone (`kollm run <stage>`); the executors read this
    (recipes/executors.py), never the stage's name. A whole pipeline runs every stage as one process."""

    # processes per node under torchrun; None: one process (torchrun only when ranks x run.nodes > 1)
    ranks: Callable[[PipelineConfig], int] | None = None
    # whether it may run on run.nodes > 1 (else several nodes would run it several times over)
    multi_node: Callable[[PipelineConfig], bool] = _never
    # Slurm: SIGUSR1 before the time limit, the stage checkpoints and exits 75, the job requeues (run.requeues)
    requeue: bool = False


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
    launch: Launch = Launch()
    # roles its outputs play for the stages after it: {"model": "model_dir"} says its model_dir is *the* model
    # (what export, quantize and serve ship), so they ask for the role, not for this stage by name
    roles: dict[str, str] = dataclasses.field(default_factory=dict)

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
    return _manifest_file(cfg.run_dir, stage)


def _manifest_file(run_dir: str, stage: str) -> str:
    return os.path.join(run_dir, stage, "manifest.json")


def load_manifest(run_dir: str, stage: str) -> dict | None:
    """The manifest of a stage completed in the run folder `run_dir`, or None (never run, running, failed, or
    unreadable): how the CLI and the benchmarks read a run."""
    path = _manifest_file(run_dir, stage)
    if not os.path.exists(path):
        return None
    try:
        manifest = read_json(path)
    except (OSError, json.JSONDecodeError):
        return None
    return manifest if manifest.get("status") == "complete" else None


def require(cfg: PipelineConfig, stage: str) -> dict:
    """The complete manifest of an upstream stage, or a KollmError telling what to run."""
    manifest = load_manifest(cfg.run_dir, stage)
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


def require_manifest(run_dir: str, stage: str) -> dict:
    """`load_manifest`, for a script that cannot go on without it: a KollmError naming what is missing."""
    manifest = load_manifest(run_dir, stage)
    if manifest is None:
        raise KollmError(
            f"{run_dir}: its {stage} stage has not completed (no complete {_manifest_file(run_dir, stage)})"
        )
    return manifest


def role_of(stages: tuple[Stage, ...] | list[Stage], role: str) -> tuple[str, str]:
    """(stage, output name) of the last of `stages` whose outputs play `role`."""
    for stage in reversed(list(stages)):
        if role in stage.roles:
            return stage.name, stage.roles[role]
    raise KeyError(f"no stage declares the role {role!r}")


def the(cfg: PipelineConfig, role: str) -> str:
    """The path playing `role` (e.g. "model") among the running stage's upstream stages: the last one declaring it.

    model_dir = the(cfg, "model")   # the aligned model today; whatever stage declares the role tomorrow
    """
    from stages import by_name

    current = running.get()
    if current is None:
        raise RuntimeError(f"the(cfg, {role!r}) reads the running stage's upstream; no stage is running")
    stage, output = role_of([by_name(s) for s in current.upstream], role)
    return inputs(cfg, stage)[output]


def model_of_run(run_dir: str) -> str:
    """The model a run made (the output playing the "model" role), for the CLI: a KollmError if it is not there."""
    from stages import STAGES

    stage, output = role_of(STAGES, "model")
    return require_manifest(run_dir, stage)["outputs"][output]
