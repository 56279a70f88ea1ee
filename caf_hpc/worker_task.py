"""The Dask task that supervises one strategy on a worker.

It starts the strategy's child process (``caf_hpc.child``) with its output on the
algorithm's log file, forwards the child's messages to the runner's Dask queue in
batches as they arrive, enforces the time limit, and reports how the child ended.
Every record it puts carries the id of this attempt, so that when the scheduler
re-runs the task after a lost worker, the runner can tell the attempts apart.
"""
from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
import traceback
import uuid
import weakref
from typing import Any, Callable, Optional

from distributed import Queue, WorkerPlugin

from . import forkserver, messages
from .job import StrategyTask

#: What a record says of where it comes from (for the runner's messages).
IDENTITY = ("host", "worker", "job_id", "pid")
#: Batch-system job ids a worker may run under, for error messages.
JOB_ID_VARIABLES = ("SLURM_JOB_ID", "PBS_JOBID", "JOB_ID", "LSB_JOBID", "CONDOR_JOBID")
_READ_SIZE = 1 << 20
_CHECK_INTERVAL = 1.0   # how often a quiet child is checked for time limit and cancellation
_KILL_GRACE = 5.0
_EXIT_WAIT = 60.0       # how long a child that closed its message pipe may take to exit


def worker_identity() -> dict:
    """Where this task runs: host, worker address and batch job id, for the runner's messages."""
    identity: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "worker": None, "job_id": None}
    for name in JOB_ID_VARIABLES:
        if os.environ.get(name):
            identity["job_id"] = os.environ[name]
            break
    try:
        from distributed import get_worker

        identity["worker"] = get_worker().address
    except ValueError:
        pass
    return identity


def _task_cancelled() -> bool:
    """True once the client cancelled this task (Dask cannot interrupt a running task by itself)."""
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        state = get_worker().state.tasks.get(thread_state.key)
        return state is None or state.state in ("cancelled", "released", "forgotten")
    except (ValueError, AttributeError):
        return False


def _stop(process: Any) -> Optional[int]:
    """Ends the child and its descendants: SIGTERM to its process group, SIGKILL after a grace period.

    Returns the exit code, or None if even SIGKILL did not end it within the grace
    period (a process stuck in the kernel, e.g. on a hung file system).
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return process.wait(timeout=_KILL_GRACE)
        except subprocess.TimeoutExpired:
            continue
    return None


def _start_child(task: StrategyTask, message_fd: int) -> Any:
    """Starts the strategy's process with stdout and stderr on the log file; its ``stdin`` is open for writing.

    Forked by this worker's fork server for the task's preload list (milliseconds), or,
    with ``fork_server`` off, a fresh ``python -m caf_hpc.child`` (about 100 ms, plus the
    preload, paid again by every strategy).
    """
    stdin_read, stdin_write = os.pipe()
    log_fd = os.open(task.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        if task.fork_server:
            process = forkserver.shared(task.preload).spawn(stdin_read, log_fd, message_fd, task.output_dir)
        else:
            process = subprocess.Popen(
                [sys.executable, "-m", "caf_hpc.child", str(message_fd), *task.preload],
                stdin=stdin_read, stdout=log_fd, stderr=log_fd, pass_fds=(message_fd,),
                cwd=task.output_dir, env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True)
    except BaseException:
        os.close(stdin_write)
        raise
    finally:
        os.close(stdin_read)
        os.close(log_fd)
    process.stdin = os.fdopen(stdin_write, "wb")
    return process


def supervise(task: StrategyTask, publish: Callable[[dict], None],
              cancelled: Callable[[], bool] = lambda: False) -> dict:
    """Runs the child for ``task``, publishing queue records; returns the end record."""
    attempt = uuid.uuid4().hex
    identity = worker_identity()
    end: dict[str, Any] = {"kind": messages.END, "attempt": attempt, **identity, "returncode": None,
                           "timed_out": False, "cancelled": False, "error": None}
    read_fd, write_fd = os.pipe()
    process: Any = None
    try:
        process = _start_child(task, write_fd)
        os.close(write_fd)
        write_fd = -1
        try:
            process.stdin.write(messages.frame(task.payload))
            process.stdin.flush()
        except BrokenPipeError:
            pass  # the child died at start-up; its exit code tells why
        # announced while the child already runs: its first messages wait in the pipe meanwhile
        publish({"kind": messages.START, "attempt": attempt, **identity})
        deadline = time.monotonic() + task.timeout if task.timeout else None
        frames = messages.FrameBuffer()
        while True:
            wait = _CHECK_INTERVAL if deadline is None else max(0.0, min(_CHECK_INTERVAL, deadline - time.monotonic()))
            ready, _, _ = select.select([read_fd], [], [], wait)
            if ready:
                data = os.read(read_fd, _READ_SIZE)
                if not data:
                    break
                complete = frames.feed(data)
                if complete:
                    publish({"kind": messages.FRAMES, "attempt": attempt, "frames": complete})
                continue
            if deadline is not None and time.monotonic() >= deadline:
                end["timed_out"] = True
                break
            if cancelled():
                end["cancelled"] = True
                break
            if process.poll() is not None:
                break  # ended, yet something it started still holds the pipe: stop listening
        if end["timed_out"] or end["cancelled"]:
            end["returncode"] = _stop(process)
        else:
            try:
                end["returncode"] = process.wait(timeout=_EXIT_WAIT)
            except subprocess.TimeoutExpired:
                end["returncode"] = _stop(process)
                end["error"] = f"the strategy's process did not exit within {_EXIT_WAIT:g} s of closing its " \
                               "message pipe and was killed"
        if end["returncode"] is None and not end["error"]:
            end["error"] = f"the strategy's process {process.pid} survived SIGKILL (stuck in the kernel?)"
    except Exception:  # the supervision itself failed: report it instead of losing it
        end["error"] = traceback.format_exc()
        if process is not None and process.poll() is None:
            end["returncode"] = _stop(process)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
        if process is not None:
            process.stdin.close()  # the child's signal that its supervisor is gone, if it still runs
    publish(end)
    return end


def run_strategy_task(task: StrategyTask) -> dict:
    """The function submitted to Dask: ``supervise`` with the runner's queue as the destination."""
    return supervise(task, _Producer(task.queue_name).put, _task_cancelled)


class PreloadPlugin(WorkerPlugin):
    """Starts a worker's fork server for a preload list as soon as the worker is there.

    The server imports and calls the preload (ROOT's interpreter start, a declaration of
    C++ classes: seconds) in the background, on every worker at once and on each worker
    that joins later, instead of on the path of the first strategy each worker gets.
    Starting it only launches the process; a strategy that comes before it is ready waits
    for it as it would have anyway.
    """

    idempotent = True  # registered by every run(); the first registration holds

    def __init__(self, preload: tuple) -> None:
        self.preload = tuple(preload)
        self.name = f"caf-hpc-preload-{uuid.uuid5(uuid.NAMESPACE_URL, ','.join(self.preload)).hex[:12]}"

    def setup(self, worker: Any) -> None:
        forkserver.shared(self.preload)


_preloading: "weakref.WeakKeyDictionary[Any, set]" = weakref.WeakKeyDictionary()


def start_preloading(client: Any, preload: tuple) -> None:
    """Has every worker of ``client``'s cluster, present and future, start its fork server for ``preload``."""
    registered = _preloading.setdefault(client, set())
    if preload and tuple(preload) not in registered:
        client.register_plugin(PreloadPlugin(preload))
        registered.add(tuple(preload))


class _Producer(Queue):
    """A handle on the runner's ``distributed.Queue`` that puts without counting as a holder.

    A ``Queue`` made on the worker would register itself with the scheduler, which keeps
    a queue until every holder let go; a worker that dies never does. Here only the
    runner's handle holds the queue, so it goes when the runner is done with it.
    """

    def _maybe_start(self) -> None:
        pass  # the runner created the queue; do not register as a holder
