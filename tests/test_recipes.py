"""Recipes are NeMo Run configs; executors are chosen by config (nothing launched here)."""

import glob
import json
import os

import fiddle as fdl
import nemo_run as run
import pytest

from kollm import config
from kollm.core.errors import KollmError
from recipes import executors, pipeline, presets
from stages import NAMES, STAGES
from stages.runner import main as stage_main
from tests.conftest import run_cli


def test_every_stage_is_a_task_carrying_the_typed_config(tmp_path):
    cfg = presets.build("ci", [f"run.root={tmp_path}", "pretrain.steps=7"])
    tasks = dict(pipeline.experiment_tasks(cfg))
    assert list(tasks) == NAMES
    for stage in STAGES:
        task = tasks[stage.name]
        if stage.env == "serve":  # a script under the serving environment's python, handed the config file
            assert isinstance(task, run.Script) and task.m and task.path == "recipes.cli"
            assert task.args[:2] == ["stage", stage.name]
            assert config.from_dict(json.load(open(task.args[-1]))) == cfg  # handed over intact
            continue
        assert isinstance(task, run.Partial) and task.stage == stage.name
        built = fdl.build(task)  # what NeMo Run's runner calls: the stage entry with the same config
        assert built.func is stage_main and built.keywords["stage"] == stage.name
        assert built.keywords["cfg"] == cfg and built.keywords["cfg"].pretrain.steps == 7
    assert [s.env for s in STAGES].count("serve") == 1


def test_executor_is_config_not_code(tmp_path):
    cfg = presets.build("ci", [f"run.root={tmp_path}"])
    assert isinstance(executors.for_config(cfg), run.LocalExecutor)
    cfg = presets.build(
        "ci",
        [
            f"run.root={tmp_path}",
            "run.executor=slurm",
            "run.partition=gpu",
            "run.account=kollm",
            "run.gpus_per_node=8",
            "run.container_image=nvcr.io/nvidia/nemo:25.11",
        ],
    )
    slurm = executors.for_config(cfg)
    assert isinstance(slurm, run.SlurmExecutor)
    assert slurm.gpus_per_node == 8 and slurm.container_image == "nvcr.io/nvidia/nemo:25.11"
    assert f"{os.path.abspath(tmp_path)}:{os.path.abspath(tmp_path)}" in slurm.container_mounts
    with pytest.raises(KollmError, match="needs run.container_image"):
        executors.for_config(presets.build("ci", ["run.executor=docker"]))
    with pytest.raises(KollmError, match="run.nodes > 1"):
        executors.for_config(presets.build("ci", ["run.executor=slurm", "run.nodes=2"]))
    with pytest.raises(KollmError, match="run.nodes > 1"):  # curation spans nodes only on Ray
        executors.for_config(presets.build("ci", ["run.executor=slurm", "run.nodes=2"]), ["curate"])
    multi = executors.for_config(
        presets.build("ci", ["run.executor=slurm", "run.nodes=4", "curate.executor=ray"]), ["curate"]
    )
    assert multi.nodes == 4 and multi.ntasks_per_node == 1


def test_slurm_dryrun_writes_the_sbatch_script(tmp_path):
    home = tmp_path / "nemo_run_home"
    proc = run_cli(
        [
            "run",
            "pretrain",
            "preset=tiny",
            f"run.root={tmp_path}",
            "run.executor=slurm",
            "run.partition=gpu",
            "run.account=kollm",
            "run.gpus_per_node=8",
            "run.time_limit=04:00:00",
            "run.container_image=nvcr.io/nvidia/nemo:25.11",
            "--dryrun",
        ],
        env={"NEMORUN_HOME": str(home)},
    )
    assert proc.returncode == 0, proc.stderr
    scripts = glob.glob(str(tmp_path / "**" / "*_sbatch.sh"), recursive=True) + glob.glob(
        str(home / "**" / "*_sbatch.sh"), recursive=True
    )
    assert scripts, proc.stdout[-2000:]
    sbatch = open(scripts[0]).read()
    for line in (
        "#SBATCH --account=kollm",
        "#SBATCH --partition=gpu",
        "#SBATCH --nodes=1",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --time=04:00:00",
    ):
        assert line in sbatch, sbatch
    assert "--container-image nvcr.io/nvidia/nemo:25.11" in sbatch
    assert "fdl_runner" in sbatch
    assert not os.path.exists(tmp_path / "tiny" / "pretrain" / "manifest.json")  # nothing ran


def _normalised_sbatch(text: str, root: str) -> str:
    import re

    text = text.replace(root, "<ROOT>")
    text = re.sub(r"kollm-1b_\d+", "kollm-1b_<EXP>", text)
    return re.sub(r"--rdzv-id \d+", "--rdzv-id <ID>", text)


def test_sbatch_snapshot_pretrain_1b_on_2_nodes_x_8_gpus(tmp_path):
    """The whole generated sbatch for the 1B preset on 2 nodes x 8 GPUs in the NeMo container:
    torchrun on every node (8 ranks each, c10d rendezvous on the head node), pyxis container,
    --requeue and SIGUSR1 two minutes before the time limit, passed on to the ranks by torchrun, and
    NeMo Run's requeue of a job that exits non-zero (run.requeues). Regenerate deliberately with
    KOLLM_UPDATE_SNAPSHOTS=1."""
    home = tmp_path / "home"
    proc = run_cli(
        [
            "run",
            "pretrain",
            "preset=1b",
            f"run.root={tmp_path}",
            "run.executor=slurm",
            "run.nodes=2",
            "run.partition=gpu",
            "run.account=kollm",
            "run.container_image=nvcr.io/nvidia/nemo:25.11",
            "--dryrun",
        ],
        env={"NEMORUN_HOME": str(home)},
    )
    assert proc.returncode == 0, proc.stderr
    [script] = glob.glob(str(home / "**" / "*_sbatch.sh"), recursive=True)
    got = _normalised_sbatch(open(script).read(), str(tmp_path))
    snapshot = os.path.join(os.path.dirname(__file__), "snapshots", "sbatch_pretrain_1b_2x8.sh")
    if os.environ.get("KOLLM_UPDATE_SNAPSHOTS"):
        open(snapshot, "w").write(got)
    assert got == open(snapshot).read()
    for line in (
        "#SBATCH --nodes=2",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --requeue",
        "#SBATCH --signal=USR1@120",
        "--nnodes 2 --nproc-per-node 8",
        "--container-image nvcr.io/nvidia/nemo:25.11",
        # a job stopped by the signal (non-zero exit) requeues itself; torchrun passes SIGUSR1 on
        "export TORCHX_MAX_RETRIES=3",
        "export PET_SIGNALS_TO_HANDLE=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1",
    ):
        assert line in got


def test_gpu_presets_are_valid_and_scale_by_config_only():
    """GPU-only configs (megatron, TP/SP, distributed optimizer): checked here, run on GPU hosts."""
    one_gpu, eight, multi = presets.llama_125m_1gpu(), presets.llama_1b_8gpu(), presets.llama_8b_32gpu()
    assert (one_gpu.run.gpus_per_node, eight.run.gpus_per_node, multi.run.nodes) == (1, 8, 4)
    assert all(c.pretrain.backend == "megatron" and c.pretrain.precision == "bf16" for c in (one_gpu, eight, multi))
    assert multi.pretrain.tensor_parallel == 2 and multi.pretrain.sequence_parallel
    # the same recipe function, only the config differs
    assert fdl.build(pipeline.experiment_tasks(eight, ["pretrain"])[0][1]).keywords["cfg"].model.num_layers == 16
    slurm = config.apply_overrides(presets.llama_8b_32gpu(), ["run.executor=slurm"])
    ex = executors.for_config(slurm, ["pretrain"])
    assert (ex.nodes, ex.launcher, ex.torchrun_nproc_per_node or ex.ntasks_per_node) == (4, "torchrun", 8)
    # SIGUSR1 before the time limit reaches the ranks through torchrun; a stopped job requeues itself
    assert "SIGUSR1" in ex.env_vars["PET_SIGNALS_TO_HANDLE"] and ex.retries == slurm.run.requeues > 0
    with pytest.raises(KollmError, match="divisible by TP x PP x CP"):
        config.validate(config.apply_overrides(presets.llama_125m_1gpu(), ["pretrain.tensor_parallel=2"]))
    with pytest.raises(KollmError, match="needs pretrain.backend=megatron"):
        config.validate(config.apply_overrides(presets.llama_5m_cpu_demo(), ["pretrain.fp8=hybrid"]))
    with pytest.raises(KollmError, match="model.impl=scratch .* trains on pretrain.backend=torch"):
        config.validate(config.apply_overrides(presets.llama_125m_1gpu(), ["model.impl=scratch"]))
    with pytest.raises(KollmError, match="model.impl"):
        config.validate(config.apply_overrides(presets.llama_5m_cpu_demo(), ["model.impl=numpy"]))


@pytest.mark.gpu
def test_megatron_transformer_config_for_gpus():
    """The TransformerConfig a GPU run gets: bf16 params, fused kernels, fp8 through Transformer Engine."""
    import torch

    from kollm.pretrain.megatron import gpt_model as mmodel

    cfg = config.apply_overrides(presets.llama_8b_32gpu(), ["pretrain.fp8=hybrid"])
    tc = mmodel.transformer_config(cfg.model, cfg.pretrain, on_gpu=True)
    assert tc.bf16 and tc.params_dtype == torch.bfloat16 and tc.fp8 == "hybrid"
    assert tc.tensor_model_parallel_size == 2 and tc.sequence_parallel and tc.num_query_groups == 8
    assert tc.bias_activation_fusion and not tc.use_cpu_initialization
    assert tc.apply_rope_fusion == mmodel.has_transformer_engine()  # TE's kernel, in NGC containers


def test_ci_runs_the_laptop_recipe_at_ci_size():
    """The laptop preset is a benchmark (benchmarks/eval_laptop.py); the suite runs its choices at ci size."""
    laptop, ci = presets.from_preset("laptop"), presets.from_preset("ci")
    config.validate(laptop)
    assert laptop.model == presets.llama_5m_cpu_demo().model  # the shape benchmarks/laptop_sweep.py picked
    # two passes over the ~12.8M curated tokens, resumable
    assert laptop.pretrain.steps * laptop.pretrain.batch_size * laptop.pretrain.seq_len >= 2 * 12.8e6
    assert laptop.pretrain.checkpoint_every and laptop.data.max_reviews == 0 and laptop.data.max_comments == 0
    keys = ("method", "head", "full_lr", "tasks")
    assert [getattr(ci.finetune, k) for k in keys] == [getattr(laptop.finetune, k) for k in keys]
