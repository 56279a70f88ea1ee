"""A Dask preload that ends a local cluster's scheduler or nanny once the process that
started it is gone.

The local default's scheduler and nannies are processes of their own, started by the
steering script. A script that exits normally closes them; one that is killed (SIGKILL,
the out-of-memory killer, a lost terminal) cannot, and they would run on for good. The
nanny's worker, the worker's fork server and the strategies each end with their parent
already, so guarding these two ends the whole tree.

The process to end with is named (``preload_argv: ["--parent", PID]``): one that died
while this process was still starting, before the preload ran, had left it a child of
init, which the guard then took for its parent and watched for good.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any

import click

_CHECK_INTERVAL = 1.0


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_CHECK_INTERVAL)
    os._exit(0)


@click.command()
@click.option("--parent", type=int, default=None, help="the process to end with (default: the parent now)")
def dask_setup(server: Any, parent: int | None) -> None:
    threading.Thread(target=_watch, args=(parent or os.getppid(),), daemon=True, name="caf-hpc-parent-guard").start()
