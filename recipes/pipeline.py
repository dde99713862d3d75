"""The whole pipeline (or some of its stages) as one NeMo Run experiment, stages run one after another."""

from __future__ import annotations

import os

import nemo_run as run

from kollm.config import PipelineConfig
from recipes import executors, stage_tasks
from stages import NAMES, by_name


def experiment_tasks(cfg: PipelineConfig, only: list[str] | None = None) -> list[tuple[str, run.Partial | run.Script]]:
    """(stage name, NeMo Run task) in pipeline order; writes the run's config.json they share."""
    config_file = stage_tasks.write_config(cfg)
    return [(name, stage_tasks.task(name, cfg, config_file)) for name in (only or NAMES)]


def launch(cfg: PipelineConfig, only: list[str] | None = None, dryrun: bool = False) -> dict:
    """Run (or dry-run) the stages through NeMo Run; returns {stage: status} from the experiment."""
    os.makedirs(cfg.run_dir, exist_ok=True)
    executor = executors.for_config(cfg, only)
    with run.Experiment(f"kollm-{cfg.run.name or cfg.preset}", executor=executor, log_level="WARN") as exp:
        for name, task in experiment_tasks(cfg, only):
            exp.add(
                task, executor=executors.for_stage(executor, cfg, by_name(name).env), name=name, tail_logs=not dryrun
            )
        if dryrun:
            exp.dryrun(log=True, delete_exp_dir=False)
            return {"_exp_dir": exp._exp_dir}
        exp.run(sequential=True, detach=False)
        status = {name: str(info["status"]) for name, info in exp.status(return_dict=True).items()}
        status["_exp_dir"] = exp._exp_dir
        return status
