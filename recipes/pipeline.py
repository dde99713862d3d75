"""The whole pipeline as one NeMo Run experiment: the stage tasks, run one after another."""

from __future__ import annotations

import dataclasses
import os

import nemo_run as run

from kollm.config import PipelineConfig
from kollm.io import write_json
from kollm.stages import STAGES
from recipes import executors, stages


def tasks(cfg: PipelineConfig, only: list[str] | None = None) -> list[tuple[str, run.Partial | run.Script]]:
    return [(name, stages.RECIPES[name](cfg)) for name in (only or STAGES)]


def launch(cfg: PipelineConfig, only: list[str] | None = None, dryrun: bool = False) -> dict:
    """Run (or dry-run) the stages through NeMo Run; returns {stage: status} from the experiment."""
    os.makedirs(cfg.run_dir, exist_ok=True)
    write_json(os.path.join(cfg.run_dir, "config.json"), dataclasses.asdict(cfg))
    executor = executors.for_config(cfg, only)
    with run.Experiment(f"kollm-{cfg.run.name or cfg.preset}", executor=executor, log_level="WARN") as exp:
        for name, task in tasks(cfg, only):
            exp.add(task, executor=executor.clone(), name=name, tail_logs=not dryrun)
        if dryrun:
            exp.dryrun(log=True, delete_exp_dir=False)
            return {"_exp_dir": exp._exp_dir}
        exp.run(sequential=True, detach=False)
        status = {name: str(info["status"]) for name, info in exp.status(return_dict=True).items()}
        status["_exp_dir"] = exp._exp_dir
        return status
