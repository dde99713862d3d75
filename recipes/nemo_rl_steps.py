"""NeMo-RL steps as NeMo Run tasks: `kollm nemo-rl STEP` runs the config the align stage wrote.

    kollm nemo-rl dpo preset=1b run.executor=docker run.gpus_per_node=8 --dryrun
    kollm nemo-rl grpo preset=1b run.executor=slurm run.partition=gpu run.account=me --dryrun

The task is NeMo-RL's own command (`uv run examples/run_dpo.py --config <run>/align/nemo_rl/dpo.yaml`)
inside the `nvcr.io/nvidia/nemo-rl:v0.7.0` container (`run.nemo_rl_image`), run from its
checkout at /opt/nemo-rl: DockerExecutor on one machine; on Slurm, one node through pyxis (NeMo-RL
starts its Ray cluster on that node). Several nodes need NeMo-RL's `ray.sub`, which starts Ray on
every node of the job first: for `run.nodes` > 1 this prints that sbatch command instead.
`run.executor=local` runs the command on this machine, for use inside that container.
"""

from __future__ import annotations

import os
import shlex

import nemo_run as run

from aligner import nemo_rl
from kollm.config import PipelineConfig
from kollm.core.errors import KollmError
from recipes.executors import gpu_container, launch_script

STEPS = nemo_rl.STEPS


def config_path(cfg: PipelineConfig, step: str) -> str:
    """The step's config in the run's align stage (its manifest's nemo_rl_dir)."""
    from stages.align import AlignOutputs
    from stages.base import outputs_of

    if step not in STEPS:
        raise KollmError(f"unknown NeMo-RL step {step!r}; choose one of: {', '.join(STEPS)}")
    path = os.path.join(outputs_of(cfg.run_dir, AlignOutputs).nemo_rl_dir, f"{step}.yaml")
    if not os.path.isfile(path):
        raise KollmError(f"{path}: missing; rerun the align stage (kollm run align ...)")
    return path


def task(step: str, config: str) -> run.Script:
    """The NeMo-RL command as a NeMo Run script, from the NeMo-RL checkout in the container."""
    command = shlex.join(nemo_rl.command(step, config))
    return run.Script(inline=f"cd {nemo_rl.NEMO_RL_DIR} && {command}")


def executor(cfg: PipelineConfig):
    return gpu_container(
        cfg,
        cfg.run.nemo_rl_image,
        "NeMo-RL on several nodes starts Ray through its ray.sub; "
        "use the printed sbatch command (kollm nemo-rl STEP run.nodes=N --dryrun)",
    )


def launch(cfg: PipelineConfig, step: str, dryrun: bool = False) -> dict:
    """Run (or dry-run) one NeMo-RL step; several Slurm nodes: the ray.sub command, printed."""
    config = config_path(cfg, step)
    if cfg.run.executor == "slurm" and cfg.run.nodes > 1:
        command = nemo_rl.sbatch_command(cfg, step, config)
        print("NeMo-RL on several nodes: from a NeMo-RL v0.7.0 checkout on the login node, run\n  " + command)
        return {"command": command}
    return launch_script(f"nemo-rl-{step}", executor(cfg), task(step, config), dryrun)
