"""Run one stage: skip it when its manifest is current, else run it and write `manifest.json`.

The manifest records inputs, config, package versions, counts and wall time. A stage is
current when its manifest exists and its fingerprint (own config sections + upstream
fingerprints) is unchanged; `run.force=true` re-runs it anyway.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib
import json
import os
import platform
import socket
import sys
import time
import traceback
from importlib import metadata

from kollm.config import PipelineConfig
from kollm.errors import KollmError
from kollm.io import read_json, write_json
from kollm.stages import SECTIONS, STAGES, upstream

PACKAGES = ["kollm", "torch", "transformers", "tokenizers", "peft", "trl", "nemo_run",
            "scikit-learn", "numpy", "nvidia-pytriton", "tritonclient"]


def stage_dir(cfg: PipelineConfig, stage: str) -> str:
    return os.path.join(cfg.run_dir, stage)


def manifest_path(cfg: PipelineConfig, stage: str) -> str:
    return os.path.join(stage_dir(cfg, stage), "manifest.json")


def load_manifest(cfg: PipelineConfig, stage: str) -> dict | None:
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
        raise KollmError(f"stage {stage!r} has not completed in {cfg.run_dir}; "
                         f"run `kollm run {stage} preset={cfg.preset} run.name={cfg.run.name or cfg.preset}` first")
    return manifest


def fingerprint(cfg: PipelineConfig, stage: str) -> str:
    parts = {s: dataclasses.asdict(getattr(cfg, s)) for s in SECTIONS[stage]}
    parts["upstream"] = {u: require(cfg, u)["fingerprint"] for u in upstream(cfg, stage)}
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


def run_stage(stage: str, cfg: PipelineConfig) -> dict:
    if stage not in STAGES:
        raise KollmError(f"unknown stage {stage!r}; choose one of: {', '.join(STAGES)}")
    fp = fingerprint(cfg, stage)
    current = load_manifest(cfg, stage)
    if current and current.get("fingerprint") == fp and not cfg.run.force:
        print(f"[{stage}] up to date ({manifest_path(cfg, stage)}); skipping. Use run.force=true to redo it.",
              flush=True)
        return current
    out = stage_dir(cfg, stage)
    os.makedirs(out, exist_ok=True)
    # Under torchrun every rank runs the stage; rank 0 alone owns the manifest.
    main_rank = int(os.environ.get("RANK", 0)) == 0
    if main_rank and os.path.exists(manifest_path(cfg, stage)):
        os.unlink(manifest_path(cfg, stage))  # a half-updated stage must not look complete
    module = importlib.import_module(f"kollm.stages.{stage}")
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    print(f"[{stage}] running in {out}", flush=True)
    body = module.run(cfg, out)
    wall = time.perf_counter() - t0
    if not main_rank:
        return body
    manifest = {
        "stage": stage,
        "status": "complete",
        "fingerprint": fp,
        "run_dir": os.path.abspath(cfg.run_dir),
        "inputs": {u: os.path.abspath(stage_dir(cfg, u)) for u in upstream(cfg, stage)},
        "config": {s: dataclasses.asdict(getattr(cfg, s)) for s in SECTIONS[stage]},
        "versions": versions(),
        "host": socket.gethostname(),
        "started": started.isoformat(timespec="seconds"),
        "wall_s": round(wall, 2),
        **body,
    }
    write_json(manifest_path(cfg, stage), manifest)
    print(f"[{stage}] done in {wall:.1f}s -> {manifest_path(cfg, stage)}", flush=True)
    return manifest


def main(stage: str, cfg: PipelineConfig) -> None:
    """Entry point of a stage task (NeMo Run Partial or `kollm stage`): user errors print one line."""
    try:
        run_stage(stage, cfg)
    except KollmError as e:
        print(f"error: [{stage}] {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"error: [{stage}] interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
    except Exception:
        traceback.print_exc()
        sys.exit(1)
