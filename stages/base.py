"""What a stage is, what it may read, and the one way a stage reads another's results: the manifest.

Each stage declares its outputs once, as a typed record (a frozen dataclass of paths, e.g.
stages.pretrain.PretrainOutputs). The runner (stages.runner) writes the record into
`<run_dir>/<stage>/manifest.json` when the stage completes, and a later stage reads it back by attribute:

    model_dir = inputs(cfg, PretrainOutputs).model_dir

getting the path the pretrain stage recorded. No stage rebuilds another stage's paths: only `stage_dir`
below knows where a stage's folder is, and only the runner calls it. A running stage sees its own config
sections, the fields of other sections it declared (`config_reads`, in its fingerprint), and the run's
name and place (`ConfigView`); reading anything else, or a stage it did not declare upstream, fails at once.
"""

from __future__ import annotations

import contextvars
import dataclasses
import inspect
import json
import os
import sys
from collections.abc import Callable
from typing import Any, Literal, Self, TypeVar, cast

from kollm.config import PipelineConfig
from kollm.core import KollmError, read_json


@dataclasses.dataclass(frozen=True)
class Outputs:
    """What a stage produced, by name: each stage subclasses this as a frozen dataclass of paths (str fields).
    The runner writes it into the manifest's "outputs"; `inputs` and `outputs_of` read it back."""

    def paths(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_manifest(cls, manifest: dict, stage: str) -> Self:
        recorded = manifest.get("outputs", {})
        if set(recorded) != set(cls.names()):
            where = f" in {manifest['run_dir']}" if manifest.get("run_dir") else ""
            raise KollmError(
                f"the {stage} stage's manifest{where} records outputs {sorted(recorded)}; "
                f"this version of kollm expects {sorted(cls.names())}: run the {stage} stage again (run.force=true)"
            )
        return cls(**recorded)


R = TypeVar("R", bound=Outputs)  # a stage's outputs record


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
    # (config, its output folder) -> manifest body: "outputs" (an instance of `outputs`), counts, metrics, ...
    run: Callable[[PipelineConfig, str], dict]
    outputs: type[Outputs]  # the record of paths its manifest holds: what later stages may read
    upstream: tuple[str, ...] = ()  # stages it reads; it refuses to start until their manifests are complete
    # config sections its result depends on; () = the section named like it, if the config has one (else none)
    sections: tuple[str, ...] = ()
    # fields of other stages' sections it reads ("finetune.max_len"): allowed in its ConfigView and fingerprinted
    config_reads: tuple[str, ...] = ()
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

    def __post_init__(self) -> None:
        for role, output in self.roles.items():
            if output not in self.outputs.names():
                raise ValueError(f"stage {self.name!r}: role {role!r} names {output!r}, not one of its outputs")

    @property
    def config_sections(self) -> tuple[str, ...]:
        own = self.name in {f.name for f in dataclasses.fields(PipelineConfig)}
        return self.sections or ((self.name,) if own else ())

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


def producer(record: type[Outputs]) -> Stage:
    """The declared stage whose outputs are `record`."""
    from stages import STAGES

    for stage in STAGES:
        if stage.outputs is record:
            return stage
    raise KeyError(f"no declared stage records {record.__name__}")


def upstream(cfg: PipelineConfig, stage: str) -> dict:
    """The complete manifest of an upstream stage of the running one (e.g. for its counts and metrics)."""
    current = running.get()
    if current is not None and stage not in current.upstream:
        raise RuntimeError(
            f"stage {current.name!r} reads {stage!r}, which its declaration does not list "
            f"as upstream {current.upstream}: add it there"
        )
    return require(cfg, stage)


def inputs(cfg: PipelineConfig, record: type[R]) -> R:
    """The outputs an upstream stage recorded in its manifest, as its typed record: `inputs(cfg, PretrainOutputs)`."""
    stage = producer(record).name
    return record.from_manifest(upstream(cfg, stage), stage)


def outputs_of(run_dir: str, record: type[R]) -> R:
    """The outputs a completed stage of the run folder `run_dir` recorded, for the CLI and the benchmarks:
    a KollmError naming what is missing."""
    stage = producer(record).name
    return record.from_manifest(require_manifest(run_dir, stage), stage)


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
    return getattr(inputs(cfg, by_name(stage).outputs), output)


def model_of_run(run_dir: str) -> str:
    """The model a run made (the output playing the "model" role), for the CLI: a KollmError if it is not there."""
    from stages import STAGES, by_name

    stage, output = role_of(STAGES, "model")
    return getattr(outputs_of(run_dir, by_name(stage).outputs), output)


# every stage sees these: the run's name and place (they locate results, they do not change them)
ALWAYS_VISIBLE = ("preset", "run", "run_dir")


class ConfigView:
    """The config a running stage sees (the runner hands it to `Stage.run`): its own sections whole, the fields of
    other sections it declared in `config_reads`, and the run's name and place. Reading anything else raises at
    once, naming the declaration to fix: what a stage's result depends on is what its fingerprint covers."""

    def __init__(self, cfg: PipelineConfig, stage: Stage):
        self._cfg, self._stage = cfg, stage
        self._fields: dict[str, set[str]] = {}
        for dotted in stage.config_reads:
            section, _, name = dotted.partition(".")
            self._fields.setdefault(section, set()).add(name)

    def __getattr__(self, name: str) -> Any:
        if name in ALWAYS_VISIBLE or name in self._stage.config_sections:
            return getattr(self._cfg, name)
        if name in self._fields:
            return _SectionView(getattr(self._cfg, name), name, self._fields[name], self._stage.name)
        raise RuntimeError(
            f"stage {self._stage.name!r} reads config section {name!r}, which its declaration does not list: "
            f"add the fields it needs to its config_reads (e.g. {name}.FIELD)"
        )


class _SectionView:
    def __init__(self, section: Any, name: str, fields: set[str], stage: str):
        self._section, self._name, self._allowed, self._stage = section, name, fields, stage

    def __getattr__(self, field: str) -> Any:
        if field not in self._allowed:
            raise RuntimeError(
                f"stage {self._stage!r} reads {self._name}.{field}, which its declaration's config_reads "
                f"{sorted(self._allowed)} do not list: add it there"
            )
        return getattr(self._section, field)


def view(cfg: PipelineConfig, stage: Stage) -> PipelineConfig:
    """`cfg` as `stage` may read it (typed as the config it stands for)."""
    return cast(PipelineConfig, ConfigView(cfg, stage))


def declared_reads(cfg: PipelineConfig, stage: Stage) -> dict[str, Any]:
    """The values of the other sections' fields `stage` declared it reads: part of its fingerprint."""
    values = {}
    for dotted in stage.config_reads:
        section, _, name = dotted.partition(".")
        values[dotted] = getattr(getattr(cfg, section), name)
    return values
