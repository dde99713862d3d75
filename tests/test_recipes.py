"""Recipes are NeMo Run configs; executors are chosen by config (nothing launched here)."""

import glob
import os

import nemo_run as run
import pytest

from kollm import config
from kollm.errors import KollmError
from kollm.stages import STAGES
from recipes import executors, pipeline, stages
from tests.conftest import run_cli


def test_every_stage_has_a_recipe_with_the_typed_config(tmp_path):
    cfg = config.build("ci", [f"run.root={tmp_path}", "pretrain.steps=7"])
    tasks = dict(pipeline.tasks(cfg))
    assert list(tasks) == STAGES
    for name in STAGES[:-1]:
        task = tasks[name]
        assert isinstance(task, run.Partial)
        built = run.build(task.cfg) if hasattr(run, "build") else None
        assert task.stage == name
        assert task.cfg.pretrain.steps == 7
        if built is not None:
            assert built == cfg
    serve = tasks["serve"]
    assert isinstance(serve, run.Script) and serve.m and serve.path == "kollm.cli"
    assert serve.args[:2] == ["stage", "serve"]
    assert config.from_dict(__import__("json").load(open(serve.args[-1]))) == cfg  # config handed over intact


def test_executor_is_config_not_code(tmp_path):
    cfg = config.build("ci", [f"run.root={tmp_path}"])
    assert isinstance(executors.for_config(cfg), run.LocalExecutor)
    cfg = config.build("ci", [f"run.root={tmp_path}", "run.executor=slurm", "run.partition=gpu", "run.account=kollm",
                              "run.gpus_per_node=8", "run.container_image=nvcr.io/nvidia/nemo:25.11"])
    slurm = executors.for_config(cfg)
    assert isinstance(slurm, run.SlurmExecutor)
    assert slurm.gpus_per_node == 8 and slurm.container_image == "nvcr.io/nvidia/nemo:25.11"
    assert f"{os.path.abspath(tmp_path)}:{os.path.abspath(tmp_path)}" in slurm.container_mounts
    with pytest.raises(KollmError, match="needs run.container_image"):
        executors.for_config(config.build("ci", ["run.executor=docker"]))
    with pytest.raises(KollmError, match="run.nodes > 1"):
        executors.for_config(config.build("ci", ["run.executor=slurm", "run.nodes=2"]))
    with pytest.raises(KollmError, match="run.nodes > 1"):  # curation spans nodes only on Ray
        executors.for_config(config.build("ci", ["run.executor=slurm", "run.nodes=2"]), ["curate"])
    multi = executors.for_config(config.build("ci", ["run.executor=slurm", "run.nodes=4", "curate.executor=ray"]),
                                 ["curate"])
    assert multi.nodes == 4 and multi.ntasks_per_node == 1


def test_slurm_dryrun_writes_the_sbatch_script(tmp_path):
    home = tmp_path / "nemo_run_home"
    proc = run_cli(["run", "pretrain", "preset=tiny", f"run.root={tmp_path}", "run.executor=slurm",
                    "run.partition=gpu", "run.account=kollm", "run.gpus_per_node=8", "run.time_limit=04:00:00",
                    "run.container_image=nvcr.io/nvidia/nemo:25.11", "--dryrun"],
                   env={"NEMORUN_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    scripts = glob.glob(str(tmp_path / "**" / "*_sbatch.sh"), recursive=True) + \
        glob.glob(str(home / "**" / "*_sbatch.sh"), recursive=True)
    assert scripts, proc.stdout[-2000:]
    sbatch = open(scripts[0]).read()
    for line in ("#SBATCH --account=kollm", "#SBATCH --partition=gpu", "#SBATCH --nodes=1",
                 "#SBATCH --gpus-per-node=8", "#SBATCH --time=04:00:00"):
        assert line in sbatch, sbatch
    assert "--container-image nvcr.io/nvidia/nemo:25.11" in sbatch
    assert "kollm.stages.runner.main" in sbatch or "fdl_runner" in sbatch
    assert not os.path.exists(tmp_path / "tiny" / "pretrain" / "manifest.json")  # nothing ran
