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


def _normalised_sbatch(text: str, root: str) -> str:
    import re

    text = text.replace(root, "<ROOT>")
    text = re.sub(r"kollm-1b_\d+", "kollm-1b_<EXP>", text)
    return re.sub(r"--rdzv-id \d+", "--rdzv-id <ID>", text)


def test_sbatch_snapshot_pretrain_1b_on_2_nodes_x_8_gpus(tmp_path):
    """The whole generated sbatch for the 1B preset on 2 nodes x 8 GPUs in the NeMo container:
    torchrun on every node (8 ranks each, c10d rendezvous on the head node), pyxis container,
    --requeue and SIGUSR1 two minutes before the time limit. Regenerate deliberately with
    KOLLM_UPDATE_SNAPSHOTS=1."""
    home = tmp_path / "home"
    proc = run_cli(["run", "pretrain", "preset=1b", f"run.root={tmp_path}", "run.executor=slurm", "run.nodes=2",
                    "run.partition=gpu", "run.account=kollm", "run.container_image=nvcr.io/nvidia/nemo:25.11",
                    "--dryrun"], env={"NEMORUN_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    [script] = glob.glob(str(home / "**" / "*_sbatch.sh"), recursive=True)
    got = _normalised_sbatch(open(script).read(), str(tmp_path))
    snapshot = os.path.join(os.path.dirname(__file__), "snapshots", "sbatch_pretrain_1b_2x8.sh")
    if os.environ.get("KOLLM_UPDATE_SNAPSHOTS"):
        open(snapshot, "w").write(got)
    assert got == open(snapshot).read()
    for line in ("#SBATCH --nodes=2", "#SBATCH --gpus-per-node=8", "#SBATCH --requeue", "#SBATCH --signal=USR1@120",
                 "--nnodes 2 --nproc-per-node 8", "--container-image nvcr.io/nvidia/nemo:25.11"):
        assert line in got


def test_gpu_presets_are_valid_and_scale_by_config_only():
    """GPU-only configs (megatron, TP/SP, distributed optimizer): checked here, run on GPU hosts."""
    from recipes import pretrain as recipes_pretrain

    one_gpu, eight, multi = recipes_pretrain.small(), recipes_pretrain.llama_1b(), recipes_pretrain.llama_8b()
    assert (one_gpu.run.gpus_per_node, eight.run.gpus_per_node, multi.run.nodes) == (1, 8, 4)
    assert all(c.pretrain.backend == "megatron" and c.pretrain.precision == "bf16" for c in (one_gpu, eight, multi))
    assert multi.pretrain.tensor_parallel == 2 and multi.pretrain.sequence_parallel
    # the same recipe function, only the config differs
    assert recipes_pretrain.recipe(eight).cfg.model.num_layers == 16
    slurm = config.apply_overrides(recipes_pretrain.llama_8b(), ["run.executor=slurm"])
    ex = recipes_pretrain.executor(slurm)
    assert (ex.nodes, ex.launcher, ex.torchrun_nproc_per_node or ex.ntasks_per_node) == (4, "torchrun", 8)
    with pytest.raises(KollmError, match="divisible by TP x PP x CP"):
        config.validate(config.apply_overrides(recipes_pretrain.small(), ["pretrain.tensor_parallel=2"]))
    with pytest.raises(KollmError, match="needs pretrain.backend=megatron"):
        config.validate(config.apply_overrides(config.tiny(), ["pretrain.fp8=hybrid"]))


@pytest.mark.gpu
def test_megatron_transformer_config_for_gpus():
    """The TransformerConfig a GPU run gets: bf16 params, fused kernels, fp8 through Transformer Engine."""
    import torch

    from kollm.megatron import model as mmodel

    cfg = config.apply_overrides(config.llama_8b(), ["pretrain.fp8=hybrid"])
    tc = mmodel.transformer_config(cfg.model, cfg.pretrain, on_gpu=True)
    assert tc.bf16 and tc.params_dtype == torch.bfloat16 and tc.fp8 == "hybrid"
    assert tc.tensor_model_parallel_size == 2 and tc.sequence_parallel and tc.num_query_groups == 8
    assert tc.bias_activation_fusion and not tc.use_cpu_initialization
    assert tc.apply_rope_fusion == mmodel.has_transformer_engine()  # TE's kernel, in NGC containers
