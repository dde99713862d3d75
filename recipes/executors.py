"""Executors as config: `run.executor=local|slurm|docker` picks one, the recipe stays the same."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import nemo_run as run

from kollm.config import PipelineConfig
from kollm.core.errors import KollmError
from kollm.data.sources import repo_root
from stages.base import Launch

CONTAINER_REPO = "/workspace/kollm"  # where containers/ images hold the repository

ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}

# torchrun passes these signals on to its ranks (by default it handles SIGTERM but would die on
# Slurm's SIGUSR1) and then waits this long for them to checkpoint and exit before killing them:
# inside the two minutes of `--signal=USR1@120`
TORCHRUN_ENV = {"PET_SIGNALS_TO_HANDLE": "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1", "PET_SHUTDOWN_TIMEOUT": "100"}


def launched(stages: list[str] | None) -> Launch:
    """The launch traits of what runs: a stage alone has its own (stages/__init__.py); a pipeline, none."""
    from stages import by_name

    return by_name(stages[0]).launch if stages and len(stages) == 1 else Launch()


def torchrun_ranks(cfg: PipelineConfig, stages: list[str] | None) -> int:
    """Ranks per node when what runs is launched through torchrun (a stage with ranks, more than one process in
    all), else 0."""
    ranks = launched(stages).ranks
    per_node = ranks(cfg) if ranks is not None else 0
    return per_node if per_node * cfg.run.nodes > 1 else 0


def local(cfg: PipelineConfig, stages: list[str] | None = None) -> run.LocalExecutor:
    """This machine: CPU, or one GPU; `pretrain.nproc_per_node=N` runs pretraining on N torchrun ranks."""
    ranks = torchrun_ranks(cfg, stages)
    if ranks:
        return run.LocalExecutor(ntasks_per_node=ranks, launcher="torchrun", env_vars={**ENV, **TORCHRUN_ENV})
    return run.LocalExecutor(ntasks_per_node=1, env_vars=dict(ENV))


def slurm_tunnel(cfg: PipelineConfig) -> run.SSHTunnel | run.LocalTunnel:
    """How sbatch is reached: over SSH (run.ssh_host), or from this machine."""
    r = cfg.run
    if not r.ssh_host and r.remote_job_dir:
        raise KollmError("run.remote_job_dir needs run.ssh_host (or leave both empty to submit from here)")
    job_dir = r.remote_job_dir or os.path.abspath(os.path.join(r.root, ".nemo_run_slurm"))
    # Submitting from this machine: the job files stay in NeMo Run's experiment folder (under
    # $NEMORUN_HOME, which `kollm run` puts in run.root: a filesystem the nodes share); a LocalTunnel
    # with a job_dir of its own would not copy them there and sbatch could not open the script.
    return (
        run.SSHTunnel(host=r.ssh_host, user=r.ssh_user or os.environ.get("USER", ""), job_dir=job_dir)
        if r.ssh_host
        else run.LocalTunnel(job_dir="")
    )


def slurm(cfg: PipelineConfig, stages: list[str] | None = None) -> run.SlurmExecutor:
    """A Slurm cluster; with `run.container_image` the tasks run in that image through pyxis.

    Several nodes: pretraining (torchrun on every node, `pretrain.nproc_per_node` ranks each,
    rendezvous on the first node), or curation on Ray (`curate.executor=ray`: Curator's
    SlurmRayClient makes node 0 the Ray head and the others Ray workers). Pretraining jobs get
    SIGUSR1 two minutes before the time limit: the loop (either backend) checkpoints and exits
    with a non-zero status (kollm.core.errors.StoppedEarly), NeMo Run's sbatch script then requeues the
    job (up to `run.requeues` times) and the requeued job resumes from that checkpoint.
    """
    r = cfg.run
    launch = launched(stages)
    if r.nodes > 1 and not launch.multi_node(cfg):
        # The other stages are one process; several nodes would run them several times over.
        raise KollmError(
            "run.nodes > 1 works for pretraining (`kollm run pretrain ...`) and for curation on Ray "
            "(`kollm run curate curate.executor=ray`); other stages and the whole pipeline: "
            "use run.nodes=1"
        )
    tunnel = slurm_tunnel(cfg)
    mounts = []
    if r.container_image:
        # The run directory must be on a filesystem every node sees.
        mounts = r.mounts
    ranks = torchrun_ranks(cfg, stages)
    extra = {"requeue": True} if launch.requeue else {}
    return run.SlurmExecutor(
        account=r.account,
        partition=r.partition or None,
        nodes=r.nodes,
        ntasks_per_node=ranks or 1,
        launcher="torchrun" if ranks else None,
        gpus_per_node=r.gpus_per_node or None,
        time=r.time_limit,
        container_image=r.container_image or None,
        container_mounts=mounts,
        tunnel=tunnel,
        packager=run.Packager(),
        env_vars={**ENV, **(TORCHRUN_ENV if ranks else {})},
        exclusive=True if r.gpus_per_node else None,
        signal="USR1@120" if launch.requeue else None,
        additional_parameters=extra,
        retries=r.requeues if launch.requeue else 0,
    )


def docker(cfg: PipelineConfig) -> run.DockerExecutor:
    """One machine with Docker (and the NVIDIA container toolkit when GPUs are asked for)."""
    r = cfg.run
    if not r.container_image:
        raise KollmError("run.executor=docker needs run.container_image (see containers/)")
    return run.DockerExecutor(
        container_image=r.container_image,
        num_gpus=r.gpus_per_node or None,
        runtime="nvidia" if r.gpus_per_node else None,
        ipc_mode="host",
        shm_size="16g",
        volumes=[f"{repo_root()}:{CONTAINER_REPO}", *r.mounts],
        packager=run.Packager(),
        env_vars=dict(ENV),
    )


def gpu_container(cfg: PipelineConfig, image: str, multi_node_hint: str):
    """One GPU node running a vendor container (`image`: run.nemo_rl_image, trtllm.container): Docker here,
    pyxis on Slurm, or this machine (`local`, for use inside that container). The run folder is mounted at
    the same path, with run.container_mounts."""
    r = cfg.run
    mounts = r.mounts
    env = {**ENV, "HF_HOME": os.path.join(os.path.abspath(r.root), ".hf")}
    if r.executor == "docker":
        return run.DockerExecutor(
            container_image=image,
            num_gpus=r.gpus_per_node or -1,
            runtime="nvidia",
            ipc_mode="host",
            shm_size="64g",
            volumes=mounts,
            packager=run.Packager(),
            env_vars=env,
        )
    if r.executor == "slurm":
        if r.nodes > 1:
            raise KollmError(multi_node_hint)
        return run.SlurmExecutor(
            account=r.account,
            partition=r.partition or None,
            nodes=1,
            ntasks_per_node=1,
            gpus_per_node=r.gpus_per_node or None,
            time=r.time_limit,
            container_image=image,
            container_mounts=mounts,
            tunnel=slurm_tunnel(cfg),
            packager=run.Packager(),
            env_vars=env,
            exclusive=True,
        )
    return run.LocalExecutor(ntasks_per_node=1, env_vars=env)


def launch_script(name: str, executor, script: run.Script, dryrun: bool) -> dict:
    """One NeMo Run task on `executor`: dry-run (what would be launched) or run to the end; its status."""
    with run.Experiment(f"kollm-{name}", executor=executor, log_level="WARN") as exp:
        exp.add(script, name=name, tail_logs=not dryrun)
        if dryrun:
            exp.dryrun(log=True, delete_exp_dir=False)
            return {"_exp_dir": exp._exp_dir}
        exp.run(sequential=True, detach=False)
        status = {task: str(info["status"]) for task, info in exp.status(return_dict=True).items()}
        return {**status, "_exp_dir": exp._exp_dir}


FACTORIES: dict[str, Callable[..., Any]] = {"local": local, "slurm": slurm, "docker": docker}


def for_stage(executor, cfg: PipelineConfig, env: str):
    """A copy of the experiment's executor for one stage: serving-environment stages run in run.serve_image
    when one is named (Slurm, Docker), the others in run.container_image."""
    own = executor.clone()
    if env == "serve" and cfg.run.serve_image and hasattr(own, "container_image"):
        own.container_image = cfg.run.serve_image
    return own


def for_config(cfg: PipelineConfig, stages: list[str] | None = None):
    """The executor for a run of `stages` (None: the whole pipeline); run.executor is one of FACTORIES
    (a Literal of kollm.config, checked by config.validate)."""
    if cfg.run.executor == "docker":
        return docker(cfg)
    return FACTORIES[cfg.run.executor](cfg, stages)
