"""Where a Curator pipeline's shards run (its executor): in-process (default) or Ray.

In-process: each shard goes through every stage depth first, so memory holds one shard per
worker and no scheduler runs: in this process (`curate.workers=1`) or in forked workers,
one per CPU by default. On 2 cores this is the fastest choice (Ray's start-up and
per-task serialisation cost more than they buy).

Ray: Curator's `RayDataExecutor` on a local Ray started with the machine's CPUs. Curator
stages ask for 1 CPU each; on a 2-core machine a pipeline of several stages waits
forever for CPUs held by upstream actors, so every stage is given a fraction
(`curate.ray_cpus_per_stage`). On a cluster, start Ray first (`ray start --head` /
`--address`, see README.md) and set RAY_ADDRESS: the same executor joins it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from loguru import logger
from nemo_curator.backends.base import BaseExecutor, NodeInfo, WorkerMetadata
from nemo_curator.stages.base import ProcessingStage
from nemo_curator.stages.resources import Resources
from nemo_curator.tasks import Task

# One "Task has no items" warning per stage for a shard whose lines were all quarantined: noise.
logger.disable("nemo_curator.tasks.document")


def _run_chain(stages: list[ProcessingStage], initial: Task) -> list[Task]:
    tasks = [initial]
    for stage in stages:
        out: list[Task] = []
        for task in tasks:
            for r in stage.process_batch([task]):
                if r is not None:
                    out.extend(r if isinstance(r, list) else [r])
        tasks = out
    return tasks


def _setup(stages: list[ProcessingStage]) -> None:
    for stage in stages:
        stage.setup_on_node(NodeInfo(node_id="local"), WorkerMetadata(worker_id=str(os.getpid())))
        stage.setup(WorkerMetadata(worker_id=str(os.getpid())))


_WORKER_STAGES: list[ProcessingStage] = []


def _worker_init(stages: list[ProcessingStage]) -> None:
    global _WORKER_STAGES
    _WORKER_STAGES = stages
    _setup(stages)


def _worker_run(initial: Task) -> tuple[Task, list[Task]]:
    return initial, _run_chain(_WORKER_STAGES, initial)


class InProcessExecutor(BaseExecutor):
    """Run each initial task through all stages, depth first: in this process (workers=1), or
    in a pool of forked worker processes, one task at a time each (workers>1)."""

    def __init__(self, workers: int = 1, on_task_done: Callable[[Task, Task], None] | None = None):
        super().__init__()
        self.workers = max(1, workers)
        self.on_task_done = on_task_done

    def _done(self, initial: Task, results: list[Task]) -> list[Task]:
        for t in results:
            if self.on_task_done:
                self.on_task_done(initial, t)
        return results

    def execute(self, stages: list[ProcessingStage], initial_tasks: list[Task] | None = None) -> list[Task]:
        initial_tasks = initial_tasks or []
        results: list[Task] = []
        if self.workers == 1 or len(initial_tasks) <= 1:
            _setup(stages)
            try:
                for initial in initial_tasks:
                    results.extend(self._done(initial, _run_chain(stages, initial)))
            finally:
                for stage in stages:
                    stage.teardown()
            return results
        import multiprocessing as mp

        # fork: stages (and loaded models) are inherited, not pickled; results are small
        ctx = mp.get_context("fork")
        with ctx.Pool(min(self.workers, len(initial_tasks)), initializer=_worker_init, initargs=(stages,)) as pool:
            for initial, out in pool.imap(_worker_run, initial_tasks):  # imap: output order = input order
                results.extend(self._done(initial, out))
        return results


def join_slurm_ray_cluster() -> None:
    """Under a multi-node Slurm job (one task per node): node 0 becomes the Ray head and returns;
    every other node becomes a Ray worker, blocks, and exits when the head stops Ray."""
    if int(os.environ.get("SLURM_JOB_NUM_NODES", "1")) > 1 and not os.environ.get("RAY_ADDRESS"):
        from nemo_curator.core.client import SlurmRayClient

        SlurmRayClient().start()  # sets RAY_ADDRESS on the head; workers never return from here


def make_executor(
    name: str,
    ray_cpus_per_stage: float,
    stages: list[ProcessingStage],
    workers: int = 1,
    on_task_done: Callable[[Task, Task], None] | None = None,
) -> tuple[BaseExecutor, list[ProcessingStage]]:
    """(executor, stages adapted to it). workers=0: one per CPU."""
    if name == "inprocess":
        return InProcessExecutor(workers or os.cpu_count() or 1, on_task_done), stages
    if name == "ray":
        import ray
        from nemo_curator.backends.ray_data import RayDataExecutor

        if not ray.is_initialized():
            if os.environ.get("RAY_ADDRESS"):
                ray.init(address=os.environ["RAY_ADDRESS"])
            else:
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
        # Every stage holds at least one worker for the whole run: their CPU asks must fit together,
        # or Ray waits forever for a CPU an upstream actor holds.
        cpus = ray.cluster_resources().get("CPU", 1.0)
        share = min(ray_cpus_per_stage, round(cpus / (len(stages) + 1), 3))
        fractional = [s.with_(resources=Resources(cpus=share)) for s in stages]
        return RayDataExecutor(), fractional
    raise ValueError(f"unknown executor {name!r}: choose inprocess or ray")
