"""Executors for Curator pipelines: in-process (default) and Ray.

In-process: each shard goes through every stage in this process, depth first, so memory
holds one shard and no scheduler runs. On 2 cores this is the fastest choice (Ray's
start-up and per-task serialisation cost more than they buy).

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


class InProcessExecutor(BaseExecutor):
    """Run each initial task through all stages in this process, one task at a time."""

    def __init__(self, on_task_done: Callable[[Task, Task], None] | None = None):
        super().__init__()
        self.on_task_done = on_task_done

    def execute(self, stages: list[ProcessingStage], initial_tasks: list[Task] | None = None) -> list[Task]:
        for stage in stages:
            stage.setup_on_node(NodeInfo(node_id="local"), WorkerMetadata(worker_id="0"))
            stage.setup(WorkerMetadata(worker_id="0"))
        results: list[Task] = []
        try:
            for initial in initial_tasks or []:
                tasks = [initial]
                for stage in stages:
                    out: list[Task] = []
                    for task in tasks:
                        for r in stage.process_batch([task]):
                            if r is None:
                                continue
                            out.extend(r if isinstance(r, list) else [r])
                    tasks = out
                for t in tasks:
                    if self.on_task_done:
                        self.on_task_done(initial, t)
                results.extend(tasks)
        finally:
            for stage in stages:
                stage.teardown()
        return results


def make_executor(name: str, ray_cpus_per_stage: float, stages: list[ProcessingStage],
                  on_task_done: Callable[[Task, Task], None] | None = None) -> tuple[BaseExecutor, list[ProcessingStage]]:
    """(executor, stages adapted to it)."""
    if name == "inprocess":
        return InProcessExecutor(on_task_done), stages
    if name == "ray":
        import ray
        from nemo_curator.backends.ray_data import RayDataExecutor

        if not ray.is_initialized():
            if os.environ.get("RAY_ADDRESS"):
                ray.init(address=os.environ["RAY_ADDRESS"])
            else:
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
        fractional = [s.with_(resources=Resources(cpus=ray_cpus_per_stage)) for s in stages]
        return RayDataExecutor(), fractional
    raise ValueError(f"unknown executor {name!r}: choose inprocess or ray")
