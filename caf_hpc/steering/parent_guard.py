"""A Dask preload that ends a local cluster's scheduler or nanny once the process that
started it is gone.

The local default's scheduler and nannies are processes of their own, started by the
steering script. A script that exits normally closes them; one that is killed (SIGKILL,
the out-of-memory killer, a lost terminal) cannot, and they would run on for good. The
nanny's worker, the worker's fork server and the strategies each end with their parent
already, so guarding these two ends the whole tree.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any

_CHECK_INTERVAL = 1.0


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_CHECK_INTERVAL)
    os._exit(0)


def dask_setup(server: Any) -> None:
    threading.Thread(target=_watch, args=(os.getppid(),), daemon=True, name="caf-hpc-parent-guard").start()
