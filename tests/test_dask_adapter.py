"""The logging filter of ``dask_adapter``: benign tracebacks about a scheduler that went away stay off the terminal."""
from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
import time

import pytest
from distributed.comm.core import CommClosedError

from caf_hpc import dask_adapter


def _logged(error: Exception, level: int, message: str, *args) -> str:
    """What ``distributed.batched`` prints for ``message`` logged with ``error``'s traceback."""
    dask_adapter.quiet_benign_errors()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("distributed.batched")
    logger.addHandler(handler)
    try:
        try:
            raise error
        except Exception:
            logger.log(level, message, *args, exc_info=True)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_batched_comm_closed_keeps_its_line_without_the_traceback():
    text = _logged(CommClosedError(), logging.INFO, "Batched Comm Closed %r", "<TCP (closed) Client->Scheduler>")
    assert text == "Batched Comm Closed '<TCP (closed) Client->Scheduler>'\n"


def test_other_tracebacks_of_that_logger_stay():
    text = _logged(ValueError("real"), logging.ERROR, "something failed")
    assert text.startswith("something failed\nTraceback") and "ValueError: real" in text


def _ctrl_c_in_sync_before_its_call_started() -> str:
    """What ``tornado.application`` logs when Ctrl-C comes while ``sync`` waits for a call the busy loop
    has not started yet (here the SIGINT comes from a timer, while the loop sleeps)."""
    import signal
    import threading

    from distributed.utils import LoopRunner, sync

    runner = LoopRunner(asynchronous=False)
    runner.start()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tornado.application")
    logger.addHandler(handler)
    try:
        runner.loop.add_callback(time.sleep, 0.5)
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):
            sync(runner.loop, asyncio.sleep, 0)
        time.sleep(1.0)  # the loop runs sync's cancel, then the call
    finally:
        logger.removeHandler(handler)
        runner.stop()
    return stream.getvalue()


def test_ctrl_c_in_a_call_that_has_not_started_leaves_no_traceback():
    logger = logging.getLogger("tornado.application")
    logger.removeFilter(dask_adapter._benign_at_exit)
    # Dask's slip that the filter is for; when this fails, a release fixed it and the filter's case can go
    assert "NameError: cannot access free variable 'future'" in _ctrl_c_in_sync_before_its_call_started()
    dask_adapter.quiet_benign_errors()
    assert _ctrl_c_in_sync_before_its_call_started() == ""


def _batch_command_failure(script: str) -> str:
    """What ``tornado.application`` prints for dask-jobqueue's error about a batch command running ``script``."""
    job_cls = dask_adapter.commands_in_own_session(dask_adapter.import_jobqueue().SLURMCluster.job_cls)
    dask_adapter.quiet_benign_errors()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tornado.application")
    logger.addHandler(handler)
    try:
        try:
            asyncio.run(job_cls._call(["sh", "-c", script]))
        except RuntimeError:
            logger.error("Exception in callback", exc_info=True)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_batch_command_cut_by_ctrl_c_leaves_no_traceback():
    assert _batch_command_failure("kill -INT $$") == ""
    failed = _batch_command_failure("echo refused >&2; exit 1")  # every other failure stays
    assert "Traceback" in failed and "Exit code: 1" in failed and "refused" in failed


# --------------------------------------------------------------------------- Ctrl-C at a terminal
def _tree(pid: int) -> list:
    import psutil

    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


@pytest.fixture
def local_cluster():
    """A local ``SubprocessCluster`` of one worker, as the runner starts it, and a client of it."""
    from distributed import Client

    cluster = dask_adapter.subprocess_cluster(threads=[1], host="127.0.0.1", dashboard_address=None,
                                              silence_logs=logging.WARNING, worker_kwargs={"death_timeout": 10})
    client = Client(cluster, set_as_default=False)
    try:
        client.wait_for_workers(1, timeout=60)
        yield cluster, client
    finally:
        client.close()
        cluster.close(timeout=20)


def test_local_cluster_processes_are_out_of_the_terminals_process_group(local_cluster):
    """A terminal's Ctrl-C goes to its foreground process group: the scheduler, the nanny and its worker
    process must not be in the steering process's group, nor in its session."""
    cluster, _ = local_cluster
    roots = [cluster.scheduler.process.pid, *(worker.process.pid for worker in cluster.workers.values())]
    for root in roots:
        for process in _tree(root):
            assert os.getpgid(process.pid) != os.getpgrp() and os.getsid(process.pid) == root, process
    assert len(_tree(roots[1])) >= 2  # the nanny and its worker process, at least


STRATEGY_LIKE = """
import subprocess, time
subprocess.Popen(["sh", "-c", "sleep 60 &"])  # the sleep leaves the tree, staying in this process group
time.sleep(60)
"""


def test_ending_the_local_workers_leaves_no_process_of_theirs(local_cluster):
    """What a worker started, down to a process that left the tree but stayed in a strategy's process
    group, ends with it; the cluster then closes without finding anything to kill."""
    import subprocess

    from tests.helpers.processes import left_running, new_mark, processes_marked

    cluster, client = local_cluster
    variable, mark = new_mark()
    # as the fork server starts a strategy: a session of its own, under the worker
    started = client.submit(subprocess.Popen, [sys.executable, "-c", STRATEGY_LIKE], start_new_session=True,
                            env=dict(os.environ, **{variable: mark}), pure=False)
    started.exception(timeout=30)
    deadline = time.monotonic() + 30
    while len(processes_marked(mark)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(processes_marked(mark)) == 2
    worker = next(iter(cluster.workers.values()))
    tree = _tree(worker.process.pid)
    dask_adapter.end_subprocess_workers(cluster, timeout=5)
    assert worker.process.returncode is not None
    assert not [process for process in tree if process.is_running() and process.status() != "zombie"]
    assert left_running(mark, seconds=1) == []


def test_batch_commands_run_outside_the_terminals_process_group():
    """dask-jobqueue's sbatch, qsub, scancel, ...: a Ctrl-C at the terminal must not cut a submission."""
    base = dask_adapter.import_jobqueue().SLURMCluster.job_cls
    job_cls = dask_adapter.commands_in_own_session(base)
    out = asyncio.run(job_cls._call([sys.executable, "-c", "import os; print(os.getsid(0), os.getpgrp())"]))
    session, group = map(int, out.split())
    assert session != os.getsid(0) and group != os.getpgrp()
    assert issubclass(job_cls, base) and job_cls.__name__ == base.__name__
    assert job_cls.submit_command == base.submit_command and job_cls.cancel_command == base.cancel_command
