"""The runner's ``distributed.Queue`` objects as the local default cluster's scheduler holds them."""
from __future__ import annotations

import time

from caf_hpc import DaskAlgorithmsRunner
from caf_hpc.steering import clusters


def scheduler_queues() -> list:
    client = clusters.client_for(DaskAlgorithmsRunner.settings())
    return client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.extensions["queues"].queues))


def new_queues_left(before, seconds: float = 10) -> list:
    """caf-hpc queues not in ``before`` that are still on the scheduler after a bounded wait."""
    deadline = time.monotonic() + seconds  # releases travel on the clients' batched streams
    left = [q for q in scheduler_queues() if q.startswith("caf-hpc-") and q not in before]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [q for q in scheduler_queues() if q.startswith("caf-hpc-") and q not in before]
    return left
