"""The Dask task that runs one collector (sub)job on a worker, as CAF's ``Local`` backend runs it.

    steering process (``caf_hpc.steering.backend``) -> (this task) -> ``bash submit.sh`` -> (this task)

The backend has written ``submit.sh``, the sandbox and ``__BACKEND_INPUT_FILES__.json``
into the job's working directory already; here ``/bin/bash submit.sh`` runs there, with
``stdout`` and ``stderr`` beside it and the environment the backend chose (CAF's
``Local``: empty, so that only the job's ``setup_cmds`` set it up). The script is
forked by the worker's fork server, in a session of its own: when the worker goes, the
server kills it with everything it started; when the task is cancelled (Ctrl-C, the end
of the steering script), this task kills it the same way.

An attempt that the scheduler runs again after a lost worker starts clean: what the
lost attempt left (its ``stdout``, ``stderr``, exit-code file and outputs) is removed
first, so that nothing of it is taken for the new attempt's output.
"""
from __future__ import annotations

import glob
import os
import subprocess
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from .. import dask_adapter, protocol
from . import forkserver
from .task import _stop, end_leftovers, where

_CHECK_INTERVAL = 0.5   # how often a running script is checked for cancellation
EXIT_CODE_FILE = "__BACKEND_CMD_EXIT_STATUS__"


def _clear_earlier_attempt(task: protocol.CollectorTask) -> None:
    """Removes what an earlier attempt of this (sub)job left, so that it is not mistaken for this one's."""
    for name in ("stdout", "stderr", EXIT_CODE_FILE):
        try:
            os.unlink(os.path.join(task.working_dir, name))
        except FileNotFoundError:
            pass
    for path in _outputs(task):
        try:
            os.unlink(path)
        except (FileNotFoundError, IsADirectoryError):
            pass


def _outputs(task: protocol.CollectorTask) -> list:
    return sorted({path for pattern in task.output_patterns
                   for path in glob.glob(os.path.join(glob.escape(task.output_dir), pattern))})


def _check_paths(task: protocol.CollectorTask, here: protocol.Where) -> None:
    script = os.path.join(task.working_dir, task.script)
    if not os.access(script, os.R_OK):
        raise Unstartable(f"its script {script} cannot be read on {here.label()}: the steering host and the "
                          "workers must see the calibration's output directory at the same path (a shared file "
                          "system; with a container, a bind in the site's container.binds)")


class Unstartable(Exception):
    """The script cannot run on this worker: a path it needs is not there."""


def supervise(task: protocol.CollectorTask, publish: Callable[[protocol.Record], None],
              cancelled: Callable[[], bool] = lambda: False) -> protocol.CollectorEnded:
    """Runs the (sub)job's script to its end (or cancellation); returns how it ended."""
    attempt, here = uuid.uuid4().hex, where()
    mark = os.path.join(task.working_dir, f".caf-hpc-ended-{task.key}")
    if os.path.exists(mark):  # computed again by Dask after its end (see caf_hpc.worker.task._ended_before)
        with open(mark) as handle:
            code = int(handle.read() or 0)
        return protocol.CollectorEnded(task.key, attempt, here, returncode=code, outputs=tuple(_outputs(task)))
    ended: dict[str, Any] = {"returncode": None, "cancelled": False, "error": None, "unstartable": None,
                             "started_at": time.time()}
    process: Any = None
    try:
        _check_paths(task, here)
        _clear_earlier_attempt(task)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        out_fd = os.open(os.path.join(task.working_dir, "stdout"), flags, 0o644)
        err_fd = os.open(os.path.join(task.working_dir, "stderr"), flags, 0o644)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        environment = dict(os.environ) if task.environment is None else dict(task.environment)
        try:
            process = forkserver.shared(()).spawn_command(["/bin/bash", task.script], environment, task.working_dir,
                                                          null_fd, out_fd, err_fd)
        finally:
            for fd in (out_fd, err_fd, null_fd):
                os.close(fd)
        publish(protocol.Started(task.key, attempt, here))
        while True:
            try:
                ended["returncode"] = process.wait(timeout=_CHECK_INTERVAL)
                break
            except subprocess.TimeoutExpired:
                if cancelled():
                    ended["cancelled"] = True
                    ended["returncode"] = _stop(process)
                    break
        end_leftovers(process.pid)
    except Unstartable as err:
        ended["unstartable"] = str(err)
    except Exception:  # the supervision itself failed: report it instead of losing it
        ended["error"] = traceback.format_exc()
        if process is not None:
            try:
                _stop(process)
            except Exception:
                pass
    if ended["returncode"] is not None and not ended["cancelled"]:
        try:  # a second computation of this task (its result's worker lost) must not run the job again
            with open(mark, "w") as handle:
                handle.write(str(ended["returncode"]))
        except OSError:
            pass
    return protocol.CollectorEnded(task.key, attempt, here, **ended, outputs=tuple(_outputs(task)),
                                   ended_at=time.time())


def run_collector_task(task: protocol.CollectorTask) -> protocol.CollectorEnded:
    """The function submitted to Dask: ``supervise`` with the backend's queue for the Started record."""
    queue = dask_adapter.QueueProducer(task.queue_name)
    return supervise(task, lambda record: queue.put(protocol.to_wire(record)), dask_adapter.task_cancelled)
