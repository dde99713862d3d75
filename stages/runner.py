"""Run one stage: skip it when its manifest is current, else run it and write `manifest.json`.

The manifest records inputs, config, package versions, outputs, counts and wall time. A stage is
current when its manifest exists and its fingerprint (own config sections, the other sections' fields it
declared it reads, upstream fingerprints) is unchanged; `run.force=true` re-runs it anyway. The stage runs
on a `ConfigView` of the config: what it did not declare, it cannot read.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import platform
import socket
import sys
import time
import traceback
from importlib import metadata

from kollm.config import PipelineConfig
from kollm.core import KollmError, StoppedEarly, write_json
from stages.base import Outputs, Stage, declared_reads, load_manifest, manifest_path, require, running, stage_dir, view

PACKAGES = [
    "kollm",
    "torch",
    "transformers",
    "tokenizers",
    "peft",
    "trl",
    "nemo_run",
    "scikit-learn",
    "numpy",
    "nvidia-pytriton",
    "tritonclient",
]


def fingerprint(cfg: PipelineConfig, stage: Stage) -> str:
    parts = {s: dataclasses.asdict(getattr(cfg, s)) for s in stage.config_sections}
    if stage.config_reads:  # (only then: fingerprints of stages that read no other section stay as they were)
        parts["reads"] = declared_reads(cfg, stage)
    parts["upstream"] = {u: require(cfg, u)["fingerprint"] for u in stage.reads(cfg)}
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            pass
    return found


def _recorded_outputs(stage: Stage, body: dict) -> dict[str, str]:
    """A stage returns its declared record of outputs: what later stages read must be there."""
    outputs = body.get("outputs")
    if type(outputs) is not stage.outputs:
        raise RuntimeError(
            f"stage {stage.name!r} returned outputs {outputs!r}; its declaration says {stage.outputs.__name__}"
        )
    assert isinstance(outputs, Outputs)
    return outputs.paths()


def run_stage(stage: Stage, cfg: PipelineConfig) -> dict:
    fp = fingerprint(cfg, stage)
    current = load_manifest(cfg.run_dir, stage.name)
    if current and current.get("fingerprint") == fp and not cfg.run.force:
        print(
            f"[{stage.name}] up to date ({manifest_path(cfg, stage.name)}); skipping. Use run.force=true to redo it.",
            flush=True,
        )
        return current
    if current and not cfg.run.force:
        print(
            f"[{stage.name}] its config, its declared reads or an upstream stage changed since its last run; "
            "running it again",
            flush=True,
        )
    if stage.preflight:
        stage.preflight(cfg)  # raises KollmError before anything of the stage's is removed
    out = stage_dir(cfg, stage.name)
    os.makedirs(out, exist_ok=True)
    # Under torchrun every rank runs the stage; rank 0 alone owns the manifest.
    main_rank = int(os.environ.get("RANK", 0)) == 0
    if main_rank and os.path.exists(manifest_path(cfg, stage.name)):
        os.unlink(manifest_path(cfg, stage.name))  # a half-updated stage must not look complete
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.perf_counter()
    print(f"[{stage.name}] running in {out}", flush=True)
    # GRPO, judging and the evaluation generate: every stage runs with subnormals flushed (~40x on CPUs)
    from kollm.models import flush_subnormals, prepare  # imports torch, which the manifest-only paths above need not

    flush_subnormals()
    prepare(cfg.model.arch)  # what the architecture needs before its models are built or loaded (the registry's)
    token = running.set(stage)
    try:
        body = stage.run(view(cfg, stage), out)
    finally:
        running.reset(token)
    wall = time.perf_counter() - t0
    if not main_rank:
        return body
    body = {**body, "outputs": _recorded_outputs(stage, body)}
    manifest = {
        "stage": stage.name,
        "status": "complete",
        "fingerprint": fp,
        "run_dir": os.path.abspath(cfg.run_dir),
        "inputs": {u: os.path.abspath(stage_dir(cfg, u)) for u in stage.reads(cfg)},
        "config": {s: dataclasses.asdict(getattr(cfg, s)) for s in stage.config_sections},
        "versions": versions(),
        "host": socket.gethostname(),
        "started": started.isoformat(timespec="seconds"),
        "wall_s": round(wall, 2),
        **body,
    }
    write_json(manifest_path(cfg, stage.name), manifest)
    print(f"[{stage.name}] done in {wall:.1f}s -> {manifest_path(cfg, stage.name)}", flush=True)
    return manifest


def main(stage: str, cfg: PipelineConfig) -> None:
    """Entry point of a stage task (NeMo Run Partial or `kollm stage`): user errors print one line."""
    from stages import by_name

    try:
        run_stage(by_name(stage), cfg)
    except StoppedEarly as e:  # checkpointed on SIGTERM/SIGUSR1: a status that makes the job requeue
        print(f"error: [{stage}] {e}", file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
    except KollmError as e:
        print(f"error: [{stage}] {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"error: [{stage}] interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
    except Exception:
        traceback.print_exc()
        sys.exit(1)
