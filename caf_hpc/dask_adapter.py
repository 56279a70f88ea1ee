"""Every private or unstable Dask interface caf-hpc uses, in one place, each with why.

The rest of the package uses Dask's public API only. Each function here says what the
public API lacks and what would let it go; each is covered by a test that fails when a
Dask release changes what it relies on (named in its docstring).
"""
from __future__ import annotations

import asyncio
import functools
import logging
import signal
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from distributed import Client, Queue
from tornado.platform.asyncio import BaseAsyncIOLoop

if TYPE_CHECKING:  # for the annotations only: dask_jobqueue is imported by ``import_jobqueue``
    from dask_jobqueue.core import Job


# --------------------------------------------------------------------------- on the Dask worker
def task_cancelled() -> bool:
    """True once the client cancelled the task this thread runs.

    Dask cannot interrupt a running task (dask/distributed#2617: a cancelled task runs
    on), and a task has no public way to learn that it was cancelled. The worker's state
    machine holds the task's state, keyed by ``thread_state.key``. Tested by
    ``tests/worker/test_task.py::test_cancelling_the_dask_task_stops_its_strategy_process``.
    """
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        state = get_worker().state.tasks.get(thread_state.key)
        return state is None or state.state in ("cancelled", "released", "forgotten")
    except (ValueError, AttributeError):
        return False


class QueueProducer(Queue):
    """A handle on the runner's ``distributed.Queue`` that puts without holding it.

    A ``Queue`` made on a worker registers itself with the scheduler (``_maybe_start``
    sends ``queue_create``), which keeps a queue until every holder let go; a worker that
    dies never does. There is no public way to make a put-only handle. Here only the
    runner's handle holds the queue, so it goes when the runner is done with it. Tested by
    ``tests/steering/test_lost_worker.py`` (no queue left after a lost worker).
    """

    def _maybe_start(self) -> None:
        pass  # the runner created the queue; do not register as a holder


def stop_taking_work(worker: Any) -> bool:
    """Has ``worker`` take no new task, finishing those it runs; False if it is closing already.

    The worker's status becomes ``closing_gracefully``, as ``Scheduler.retire_workers``
    sets it: the scheduler sends it no new task (it is no longer among its running
    workers) and the worker starts none of those it holds (its state machine pauses).
    ``Worker.status`` is settable (it tells the scheduler) but not documented as an
    interface; ``paused``, the other status that does the same, is undone by the memory
    monitor as soon as the worker's memory is below its pause threshold. Dask's own
    ``close_gracefully`` sets this status and removes the worker without waiting for its
    running task (dask/dask-jobqueue#416). Tested by
    ``tests/worker/test_walltime.py::test_a_worker_near_its_end_takes_no_new_work_and_leaves_once_idle``.
    """
    from distributed.core import Status

    if worker.status not in (Status.running, Status.paused):
        return False
    worker.status = Status.closing_gracefully
    return True


def tasks_running(worker: Any) -> int:
    """How many tasks ``worker`` runs now (``WorkerState.executing`` and ``long_running``, not public)."""
    return len(worker.state.executing) + len(worker.state.long_running)


async def leave(worker: Any, reason: str) -> None:
    """Closes a worker that ``stop_taking_work`` drained, with its nanny, the way ``Worker.close_gracefully`` does.

    ``close_gracefully`` itself only waits for the worker to close when its status is
    ``closing_gracefully`` already, so its two steps are taken here: the scheduler retires
    the worker (what it still holds is moved elsewhere; the tasks it was sent and never
    started go to other workers), and the worker closes with its nanny, so that its batch
    job ends. Tested by
    ``tests/worker/test_walltime.py::test_a_worker_near_its_end_takes_no_new_work_and_leaves_once_idle``.
    """
    await worker.scheduler.retire_workers(workers=[worker.address], close_workers=False, remove=True,
                                          stimulus_id=f"caf-hpc-walltime-{time.time()}")
    await worker.close(nanny=True, reason=reason)


# --------------------------------------------------------------------------- in the steering process
#: Dask's handshake is a few dozen bytes; a length prefix beyond this is some other protocol's bytes.
_HANDSHAKE_LIMIT = 64 * 1024


def take_dask_handshake(sock: socket.socket, wait: float) -> bytes | None:
    """Reads the handshake a Dask listener sends on a new connection and answers it, within ``wait`` seconds.

    Returns None when what answered is a Dask listener; otherwise the bytes it sent instead
    (empty when it sent nothing within ``wait``, or closed the connection).

    A Dask listener (scheduler, worker, nanny) writes its handshake as soon as it accepts
    a connection, before it reads anything (``distributed.comm.core.Listener.on_connection``),
    framed as its TCP comm frames every message: 8 bytes of length (``struct`` "Q"), then
    that many bytes. ``distributed.comm.connect`` reads it with no time limit ("deliberately
    not subject to timeouts") and allocates whatever length it reads: a silent port (the
    dashboard's, a bare socket) made a client wait forever, and an HTTP server's reply read
    as a length asked for 3.07 EiB. The public API has no way to ask "is a Dask listener
    there?" within a deadline. The listener's own handshake is sent back as the answer (the
    handshake is symmetric: each side sends its ``handshake_info()``), so that the listener
    sees a complete handshake and a clean close, logged at DEBUG only, instead of an INFO
    line "closed before handshake completed" per runner. Tested by
    ``tests/steering/test_address_probe.py::test_a_real_scheduler_passes_the_probe_and_logs_nothing_about_it``,
    which fails when a Dask release changes the framing or who speaks first.
    """
    deadline = time.monotonic() + wait
    header = _receive(sock, 8, deadline)
    if len(header) < 8:
        return header
    (length,) = struct.unpack("Q", header)
    if not 0 < length <= _HANDSHAKE_LIMIT:
        return header + _receive(sock, 56, min(deadline, time.monotonic() + 0.2))  # enough to say what it is
    body = _receive(sock, length, deadline)
    if len(body) < length:
        return header + body
    sock.sendall(header + body)
    return None


def _receive(sock: socket.socket, count: int, deadline: float) -> bytes:
    """Up to ``count`` bytes from ``sock``, fewer if it closes or ``deadline`` passes first."""
    data = b""
    while len(data) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(count - len(data))
        except OSError:  # timed out, or reset by the other side
            break
        if not chunk:
            break
        data += chunk
    return data


def allowed_failures(client: Any) -> int:
    """How many lost workers the scheduler of ``client`` lets a task have before it ends it with ``KilledWorker``.

    The scheduler holds its limit as ``Scheduler.allowed_failures``, from its constructor's
    ``allowed_failures`` or, without it, its own ``distributed.scheduler.allowed-failures``:
    the attribute is not documented, and the config value alone misses a limit given to the
    constructor. Read on the scheduler itself (a function sent by value, so the scheduler
    needs no caf-hpc), which needs ``distributed.scheduler.pickle`` (True by default), as
    every submission of the runner does. Tested by
    ``tests/steering/test_lost_worker.py::test_retries_above_the_limit_of_a_scheduler_given_by_address_are_refused``.
    """
    limit = client.run_on_scheduler(lambda dask_scheduler: getattr(dask_scheduler, "allowed_failures", None))
    if limit is None:
        limit = client.run_on_scheduler(
            lambda: __import__("dask").config.get("distributed.scheduler.allowed-failures"))
    return int(limit)


def client_event_loop(client: Client) -> asyncio.AbstractEventLoop:
    """The asyncio loop ``client`` runs on, for ``asyncio.run_coroutine_threadsafe`` from another thread.

    ``Client.loop`` is a tornado ``IOLoop``, typed as one, and since tornado 5 every ``IOLoop`` is
    an ``AsyncIOLoop`` over an asyncio loop (``asyncio_loop``, which the base class does not
    declare; distributed's own ``sync`` reads it the same way). A started client always has
    its loop. Covered by every test that runs a strategy (the runner reads its queue through it).
    """
    loop = client.loop
    assert isinstance(loop, BaseAsyncIOLoop), f"client {client} has no asyncio event loop ({loop!r})"
    return loop.asyncio_loop


def running_workers(client: Any, metadata_key: str) -> dict:
    """``{address: (the worker's metadata under [metadata_key, address] or None, tasks it is processing)}`` for
    every worker the scheduler sends tasks to (status running), in one round trip.

    ``Client.scheduler_info`` gives neither a worker's status nor the metadata, and
    ``Client.get_metadata`` keeps the entries of workers long gone. Read on the scheduler
    itself (a function sent by value, as ``allowed_failures``): ``Scheduler.running`` (the
    workers it may send tasks to), ``WorkerState.processing`` and ``Scheduler.get_metadata``
    are not documented as interfaces. Tested by
    ``tests/steering/test_placement.py::test_placement_reads_each_workers_end_from_the_scheduler``.
    """
    def view(dask_scheduler: Any, key: str = metadata_key) -> dict:
        return {ws.address: (dask_scheduler.get_metadata(keys=[key, ws.address], default=None), len(ws.processing))
                for ws in dask_scheduler.running}

    return dict(client.run_on_scheduler(view))


def on_worker_events(client: Any, handler: Callable[[str, dict], None]) -> None:
    """Calls ``handler(action, message)`` on the client's loop for every worker the scheduler adds or removes.

    The scheduler publishes them on its ``all`` event topic, which is public
    (``Client.subscribe_topic``), but the messages' layout is not: a ``remove-worker``
    message names the worker and its ``processing-tasks``. Without it a runner would only
    learn of a lost worker when Dask re-ran the task. Tested by
    ``tests/steering/test_lost_worker.py`` and ``tests/batch/test_faults.py``.
    """
    def _on_event(event: tuple) -> None:
        _, message = event
        action = message.get("action") if isinstance(message, dict) else None
        if action in ("add-worker", "remove-worker"):
            handler(action, message)

    client.subscribe_topic("all", _on_event)


def stop_worker_events(client: Any) -> None:
    """Before a client closes: else the scheduler reports that client's leaving on the topic to it, closed."""
    client.unsubscribe_topic("all")


class _BenignAtExit(logging.Filter):
    """Keeps tracebacks Dask logs about a scheduler that went away off the user's terminal.

    * ``distributed.client``: closing a client whose scheduler went away cancels its
      reconnection, and ``log_errors`` on ``Client._reconnect`` logs the ``CancelledError``;
      so does ``log_errors`` on ``Client._close`` when the reconnection, giving up, was
      closing the client itself at that moment (seen twice in 55 runs of the
      killed-scheduler test). Dropped.
    * ``tornado.application``: a future whose state changes while the interpreter exits
      (the client cancels every future when it loses its scheduler) has its done callbacks
      handed to a thread pool that no longer takes work. The only callback is the runner's
      "task ended" notice, which nobody waits for any more. Dropped.
    * ``distributed.batched``: a message the client sends just as its scheduler goes is
      logged at INFO as "Batched Comm Closed" with the ``CommClosedError``'s traceback. The
      line stays; its traceback goes.
    * ``tornado.application``: Ctrl-C while the steering process waits in
      ``distributed.utils.sync`` before the loop started the call it waits for: ``sync``
      schedules a ``cancel`` that reads the call's future before it was assigned, and the
      ``NameError`` is logged with its traceback (the call runs on; the process is ending).
      Dropped. Tested by
      ``tests/test_dask_adapter.py::test_ctrl_c_in_a_call_that_has_not_started_leaves_no_traceback``.
    * ``tornado.application``: a batch command killed by SIGINT (exit code -2). The
      commands run in sessions of their own (``commands_in_own_session``), but one that is
      being started when Ctrl-C comes is still in the steering process's group for the
      moment between its fork and its ``setsid``, and is killed there, before it ran: no
      job was submitted, and dask-jobqueue's ``RuntimeError`` is logged with its traceback.
      Dropped. Tested by
      ``tests/test_dask_adapter.py::test_a_batch_command_cut_by_ctrl_c_leaves_no_traceback``.

    In all five the runner has already said what failed. Nothing else is touched.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.exc_info[0] is None:
            return True
        kind, error, trace = record.exc_info
        if record.name == "distributed.batched" and str(record.msg).startswith("Batched Comm Closed") \
                and kind.__name__ == "CommClosedError":
            record.exc_info, record.exc_text = None, None
            return True
        where = "".join(traceback.format_tb(trace))
        if issubclass(kind, asyncio.CancelledError) and ("_reconnect" in where or "in _close" in where):
            return False
        if issubclass(kind, NameError) and "'future'" in str(error) and "in cancel" in where \
                and "distributed" in where:
            return False
        if issubclass(kind, RuntimeError) and "dask_jobqueue" in where \
                and str(error).startswith("Command exited with non-zero exit code.\nExit code: -2\n"):
            return False
        return not (issubclass(kind, RuntimeError) and "cannot schedule new futures after" in str(error)
                    and "done_callback" in where)


_benign_at_exit = _BenignAtExit()


def quiet_benign_errors() -> None:
    """Keeps the benign tracebacks of ``_BenignAtExit`` off the user's terminal.

    Tested by ``tests/steering/test_cluster_faults.py::test_scheduler_killed_mid_run_is_one_error_for_the_user``.
    """
    for name in ("distributed.client", "tornado.application", "distributed.batched"):
        logger = logging.getLogger(name)
        if _benign_at_exit not in logger.filters:
            logger.addFilter(_benign_at_exit)


def stop_adaptive(cluster: Any) -> None:
    """Stops a cluster's adaptive scaling, if it has any, so that ``scale(0)`` holds.

    ``Cluster.adapt()`` keeps its ``Adaptive`` as ``cluster._adaptive`` and has no public
    way to stop it. Tested by ``tests/batch/test_runner.py::test_job_logs_of_a_successful_run_hold_no_error``.
    """
    adaptive = adaptive_of(cluster)
    if adaptive is not None:
        adaptive.stop()


def job_arguments(cluster: Any) -> dict:
    """The keyword arguments a dask-jobqueue cluster makes each of its ``Job`` objects with.

    ``JobQueueCluster._job_kwargs``: the site's job keys plus what the cluster adds
    (``config_name``, ``interface``, ``protocol``, the workers' ``security``). A site's worker
    pools (``sites.pools``) make jobs of the same kind for the same scheduler with some keys
    changed, and dask-jobqueue has no public way to make a job of another size for a running
    cluster. Tested by ``tests/batch/test_pools.py::
    test_the_alignment_runs_in_the_pool_job_and_the_rest_in_the_default_pool``.
    """
    return dict(cluster._job_kwargs)


def adaptive_of(cluster: Any) -> Any:
    """The ``Adaptive`` that ``cluster.adapt()`` started, or None.

    ``Cluster.adapt()`` returns it and keeps it as ``cluster._adaptive``; whoever did not
    make the call (the job replacement, asking whether the cluster's size is adaptive) has
    no public way to it. Tested by
    ``tests/steering/test_allocation.py::test_the_adaptive_of_a_cluster_is_found_and_stopped``.
    """
    return getattr(cluster, "_adaptive", None)


async def run_on_scheduler_comm(comm: Any, function: Callable, **kwargs: Any) -> Any:
    """``function(dask_scheduler, **kwargs)`` run in the scheduler's process, through a cluster's ``scheduler_comm``.

    ``Client.run_on_scheduler`` does this for a client; an ``Adaptive`` has none, only its
    cluster's RPC to the scheduler (``Cluster.scheduler_comm``), whose ``run_function``
    handler takes the function and its arguments pickled and answers ``{"status": "OK",
    "result": ...}`` (the same call the client makes, an undocumented message layout). The
    caf-hpc adaptive scaling needs the scheduler's task states (``queued``, ``unrunnable``,
    restrictions, each worker's ``processing``), which no public call reports: it uses this
    once, to add two handlers of its own to the scheduler's ``handlers`` (the table every Dask
    server dispatches its RPC calls by), and calls those. Tested by
    ``tests/steering/test_allocation.py::test_demand_counts_every_long_task_and_no_task_a_new_job_cannot_run``.
    """
    from distributed.protocol import pickle

    response = await comm.run_function(function=pickle.dumps(function), kwargs=pickle.dumps(kwargs))
    if not isinstance(response, dict) or response.get("status") != "OK":
        error = response.get("exception") if isinstance(response, dict) else response
        raise RuntimeError(f"the Dask scheduler could not run {function.__name__}: {error!r}")
    return response["result"]


def job_worker_threads(cluster: Any) -> int:
    """Threads of one worker of a dask-jobqueue cluster's jobs (``cores / processes``).

    dask-jobqueue computes it on the job object it keeps to render scripts
    (``JobQueueCluster._dummy_job.worker_process_threads``, also what its ``adapt`` uses to turn
    jobs into workers); no public attribute has it. Tested by
    ``tests/steering/test_allocation.py::test_worker_threads_of_a_job_come_from_dask_jobqueue``.
    """
    return max(1, int(cluster._dummy_job.worker_process_threads))


def subprocess_cluster(threads: Sequence[int], host: str, dashboard_address: str | None, silence_logs: int,
                       scheduler_kwargs: dict | None = None, worker_kwargs: dict | None = None) -> Any:
    """A local cluster whose scheduler and workers are fresh interpreters, one worker process per entry of
    ``threads`` with that many threads (``SubprocessCluster``'s processes, experimental).

    ``LocalCluster``'s worker processes start with multiprocessing's *spawn*, which
    re-executes the steering script in every worker, and CAF steering scripts run their
    calibration at module level with no ``if __name__ == "__main__":`` guard.
    ``SubprocessCluster`` starts ``python -m dask spec`` processes instead. Tested by
    ``tests/steering/test_local_default.py``.

    ``SubprocessCluster`` gives every worker the same number of threads; the local
    default spreads ``n_workers`` strategies over at most one process per core, so that
    ``n_workers=5`` on 2 cores is 3 + 2 threads, not 6. The cluster is therefore built
    here as ``SubprocessCluster`` builds it (a ``SpecCluster`` of its ``SubprocessScheduler``
    and ``SubprocessWorker``, with its defaults for host, dashboard, memory limit and
    logs), with one worker spec per process. Tested by
    ``tests/steering/test_many_calibrations.py::test_many_strategies_at_once_share_one_process_per_core``.

    Each of those processes starts in a session of its own (``_own_sessions``).
    """
    from distributed.deploy import subprocess as module
    from distributed.deploy.spec import SpecCluster
    from distributed.worker_memory import parse_memory_limit

    _own_sessions(module)
    worker_kwargs = dict(worker_kwargs or {})
    if "memory_limit" not in worker_kwargs:  # SubprocessCluster's: the machine's memory shared by the processes
        worker_kwargs["memory_limit"] = parse_memory_limit("auto", 1, len(threads), logger=logging.getLogger(__name__))
    scheduler = {"cls": module.SubprocessScheduler, "options": {"scheduler_kwargs": {
        "host": host, "port": 0, "dashboard": dashboard_address is not None, "dashboard_address": dashboard_address,
        **(scheduler_kwargs or {})}}}

    def worker(nthreads: int) -> dict:
        return {"cls": module.SubprocessWorker, "options": {"worker_class": "distributed.Nanny", "worker_kwargs": {
            "host": host, "nthreads": nthreads, "silence_logs": silence_logs, **worker_kwargs}}}

    return SpecCluster(workers={i: worker(n) for i, n in enumerate(threads)}, scheduler=scheduler,
                       worker=worker(max(threads)), name="SubprocessCluster", silence_logs=silence_logs)


def ended_subprocess_workers(cluster: Any) -> list:
    """The exit codes of a local ``SubprocessCluster``'s worker processes that have ended (a nanny that could
    not start its worker ends with 1); empty while all run.

    The cluster manager never looks at them once started (``SubprocessWorker.process``, an
    ``asyncio.subprocess.Process``, as ``end_subprocess_workers`` uses it): a cluster whose
    nannies all ended at start sits with no worker, and every strategy waited its whole
    ``worker_wait``. Tested by
    ``tests/steering/test_many_calibrations.py::test_local_workers_that_end_at_start_are_one_clear_error``.
    """
    from distributed.deploy.subprocess import SubprocessWorker

    return [w.process.returncode for w in list(cluster.workers.values())
            if isinstance(w, SubprocessWorker) and w.process is not None and w.process.returncode is not None]


class _SpawnInOwnSession:
    """``asyncio`` as ``distributed.deploy.subprocess`` sees it, except that its subprocesses start
    in sessions of their own (``start_new_session=True``)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def create_subprocess_exec(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("start_new_session", True)
        kwargs.setdefault("stderr", asyncio.subprocess.PIPE)  # a worker's: read by ``drain_worker_stderr``
        return await asyncio.create_subprocess_exec(*args, **kwargs)


def _own_sessions(module: Any) -> None:
    """Has ``SubprocessCluster`` start its scheduler and workers in sessions of their own.

    A terminal's Ctrl-C sends SIGINT to its whole foreground process group, and a
    subprocess stays in its parent's group: the scheduler, the nannies and their worker
    processes each raised ``KeyboardInterrupt`` and closed on their own, in any order, a
    running task's ``queue.put`` failing, the nannies waiting 4 s for workers stuck in it
    (30 s and 3 to 8 tracebacks until the prompt came back). In a session of their own
    only the steering process gets it, and closes them in order. They still end with
    it when it is killed: the scheduler through ``caf_hpc.steering.parent_guard``, the
    workers through their ``death_timeout``.

    ``SubprocessScheduler._start`` and ``SubprocessWorker._start`` call
    ``asyncio.create_subprocess_exec`` with no way to pass it arguments; the module's
    ``asyncio`` is replaced by one whose ``create_subprocess_exec`` adds
    ``start_new_session=True`` (every other name is asyncio's own). caf-hpc is the only
    user of ``SubprocessCluster`` in a steering process. A worker's process also gets its
    stderr on a pipe, read by ``drain_worker_stderr`` (the scheduler sets its own). Tested by
    ``tests/test_dask_adapter.py::test_local_cluster_processes_are_out_of_the_terminals_process_group``.
    """
    if not isinstance(module.asyncio, _SpawnInOwnSession):
        module.asyncio = _SpawnInOwnSession()


def drain_scheduler_stderr(cluster: Any, on_line: Callable[[str], None]) -> None:
    """Reads the local ``SubprocessCluster``'s scheduler stderr, line by line, on the cluster's loop.

    SubprocessCluster pipes its scheduler's stderr (``cluster.scheduler.process``, an
    implementation detail) and never reads it: a long calibration would fill the pipe and
    block the scheduler. ``stop_draining`` ends it before the cluster closes, which reads
    the pipe itself. Tested by
    ``tests/steering/test_runner_queues.py::test_scheduler_output_is_drained_so_a_chatty_scheduler_never_blocks``.
    """
    stream = cluster.scheduler.process.stderr

    def start() -> None:
        cluster.caf_hpc_drain = asyncio.ensure_future(_read_lines(stream, on_line))

    cluster.loop.add_callback(start)


async def _read_lines(stream: Any, on_line: Callable[[str], None]) -> None:
    """``on_line(text)`` for each line of a subprocess's asyncio ``stream`` until it ends."""
    while True:
        line = await stream.readline()
        if not line:
            return
        on_line(line.decode(errors="replace").rstrip())


def drain_worker_stderr(cluster: Any, on_line: Callable[[str, str], None], keep: int = 40) -> dict:
    """Reads the stderr of each worker process of a local ``SubprocessCluster`` (its nanny's, which its worker
    shares), line by line, on the cluster's loop; returns ``{worker name: its last ``keep`` lines}``.

    ``SubprocessWorker._start`` gives its process no ``stderr`` argument, so every nanny
    and worker wrote straight onto the steering script's terminal: on a machine too busy
    to start them within their ``death_timeout``, 28 nannies printed 3,410 lines of
    tracebacks there. ``_own_sessions`` has them start with their stderr on a pipe
    instead (the scheduler's own ``stderr=PIPE`` is kept), read here: ``on_line(name,
    line)`` gets each line, and the last lines of each worker stay for the message that
    says why it ended. Relies on ``SubprocessWorker.process`` and ``SpecCluster.workers``,
    as ``end_subprocess_workers`` does. Tested by
    ``tests/steering/test_many_calibrations.py::test_local_workers_that_end_at_start_are_one_clear_error``.
    """
    import collections

    from distributed.deploy.subprocess import SubprocessWorker

    tails: dict = {}
    streams = [(str(name), worker.process.stderr) for name, worker in list(cluster.workers.items())
               if isinstance(worker, SubprocessWorker) and worker.process is not None and worker.process.stderr]

    def seen(name: str, text: str) -> None:
        tails[name].append(text)
        on_line(name, text)

    def start() -> None:
        cluster.caf_hpc_worker_drains = [asyncio.ensure_future(_read_lines(stream, functools.partial(seen, name)))
                                         for name, stream in streams]

    for name, _ in streams:
        tails[name] = collections.deque(maxlen=keep)
    cluster.loop.add_callback(start)
    return tails


def stop_draining(cluster: Any) -> None:
    for drain in [getattr(cluster, "caf_hpc_drain", None), *getattr(cluster, "caf_hpc_worker_drains", ())]:
        if drain is not None:
            cluster.loop.add_callback(drain.cancel)


def end_subprocess_workers(cluster: Any, timeout: float) -> None:
    """Kills the worker processes of a local ``SubprocessCluster`` with all they started, before it closes.

    ``SubprocessCluster`` closes a worker by listing the descendants of its process and
    killing them one by one (``Subprocess.close``); a strategy that ends meanwhile (its
    task was just cancelled) makes ``psutil.NoSuchProcess`` escape, and the close fails
    with tracebacks while the nanny restarts its worker (13 s after a Ctrl-C, seen).
    And a strategy's process, a session of its own, takes with it only what stayed in
    its process group when it is killed alone. Here each worker's tree is stopped first
    (SIGSTOP: nothing forks any more), listed again, and killed with SIGKILL, the process
    groups of its strategies included; then this waits (at most ``timeout`` s) until they
    are gone and asyncio has seen its children end, so that the cluster's own close finds
    nothing left to kill. Nothing of a worker is worth a graceful end: the runner stopped
    its strategies or had none running, and the scheduler closes on its own afterwards.

    Relies on ``SubprocessWorker.process`` (an ``asyncio.subprocess.Process``) and
    ``SpecCluster.workers``. Tested by
    ``tests/test_dask_adapter.py::test_ending_the_local_workers_leaves_no_process_of_theirs``
    and the Ctrl-C tests of ``tests/steering/test_interrupt.py``.
    """
    import os
    import time

    import psutil
    from distributed.deploy.subprocess import SubprocessWorker

    ours = os.getpgrp()
    processes = [w.process for w in list(cluster.workers.values())
                 if isinstance(w, SubprocessWorker) and w.process is not None and w.process.returncode is None]
    doomed: list = []
    for worker_process in processes:
        try:
            root = psutil.Process(worker_process.pid)
            tree = [root, *root.children(recursive=True)]
            for process in tree:
                _quietly(process.suspend)
            tree = [root, *root.children(recursive=True)]  # what forked before it was stopped
        except psutil.NoSuchProcess:
            continue
        groups = set()
        for process in tree:
            try:
                groups.add(os.getpgid(process.pid))
            except OSError:
                pass
        for group in groups - {ours, 0, 1}:
            _quietly(os.killpg, group, signal.SIGKILL)
        for process in tree:
            _quietly(process.kill)
        doomed += tree[1:]  # the worker's own process is asyncio's to reap, and seen through it below
    deadline = time.monotonic() + timeout

    def gone(process: Any) -> bool:
        try:
            return process.status() == psutil.STATUS_ZOMBIE  # dead, its new parent not yet told
        except psutil.NoSuchProcess:
            return True

    while time.monotonic() < deadline and (any(p.returncode is None for p in processes)
                                           or not all(gone(p) for p in doomed)):
        time.sleep(0.01)


def _quietly(call: Callable, *args: Any) -> None:
    """``call(*args)``, for a process that may have ended meanwhile."""
    import psutil

    try:
        call(*args)
    except (ProcessLookupError, PermissionError, psutil.NoSuchProcess, psutil.AccessDenied):
        pass


async def replace_jobs(cluster: Any, names: list) -> list:
    """Closes ``cluster``'s jobs ``names`` (cancelling them if still queued) and has it submit new ones.

    dask-jobqueue keeps a fixed-size cluster's job objects after their batch job died,
    so ``scale()`` submits nothing new (dask/dask-jobqueue#611; not replacing dead workers
    is deliberate in distributed's cluster managers, dask/distributed#3118).
    ``SpecCluster.workers`` is the cluster's spec-to-job map and ``_correct_state`` makes
    the jobs match the spec again; there is no public call for "this job is gone for good". Tested by
    ``tests/batch/test_faults.py::test_lost_job_is_replaced_so_the_strategy_finds_a_worker``.
    """
    jobs = await _close_jobs(cluster, names)
    if jobs:
        await cluster._correct_state()
    return jobs


async def drop_jobs(cluster: Any, names: list) -> list:
    """Closes ``cluster``'s jobs ``names`` (cancelling them if still queued) and takes them out of its plan.

    For an adaptive cluster, whose size its ``Adaptive`` decides: the dead job's entry in
    ``SpecCluster.worker_spec`` would count as a worker still arriving, so that adaptive scaling
    would neither submit another nor retire it (``replace_jobs`` says why there is no public
    call). Tested by
    ``tests/batch/test_allocation.py::test_a_lost_job_of_an_adaptive_cluster_is_dropped_not_resubmitted``.
    """
    for name in names:
        cluster.worker_spec.pop(name, None)
    return await _close_jobs(cluster, names)


async def _close_jobs(cluster: Any, names: list) -> list:
    """Takes ``cluster``'s jobs ``names`` out of ``SpecCluster.workers`` and closes them (a dead one's close may
    fail: it is gone either way)."""
    jobs = [cluster.workers.pop(name) for name in names if name in cluster.workers]
    for job in jobs:
        try:
            await job.close()
        except Exception:
            pass
    return jobs


_Job = TypeVar("_Job", bound="Job")


def commands_in_own_session(job_cls: type[_Job]) -> type[_Job]:
    """``job_cls``, a dask-jobqueue job class, whose batch commands (submit, cancel) run in sessions of their own.

    dask-jobqueue runs ``sbatch``, ``qsub``, ``scancel``, ``qdel`` as subprocesses of the
    steering process, all through ``Job._call`` (a static method that passes its keyword
    arguments on to ``asyncio.create_subprocess_exec``; there is no public way to give
    any). A Ctrl-C at the terminal reaches them too: a submission cut by SIGINT failed
    with a traceback ("Command exited with non-zero exit code. Exit code: -2") and may
    have queued its job already, with no job id for the cluster to cancel it by. In a
    session of its own the command finishes, and the job it queued is cancelled when
    the cluster closes. Tested by
    ``tests/test_dask_adapter.py::test_batch_commands_run_outside_the_terminals_process_group``.
    """
    base_call = job_cls._call

    async def _call(cmd: list, **kwargs: Any) -> str:
        kwargs.setdefault("start_new_session", True)
        return await base_call(cmd, **kwargs)

    # a subclass made by ``type``, which the type checker cannot follow: it is a ``job_cls``
    return cast("type[_Job]", type(job_cls.__name__, (job_cls,), {"__module__": job_cls.__module__,
                                                                  "_call": staticmethod(_call),
                                                                  "__doc__": job_cls.__doc__}))


def import_jobqueue() -> Any:
    """``dask_jobqueue``, imported without the side effect of its ``runner`` module.

    dask-jobqueue 0.9.0 sets the SIGINT handler to ``sys.exit()`` on import
    (dask/dask-jobqueue#696, fixed by #697 in the release after 0.9.0, which the package
    index does not have yet): Ctrl-C of a steering script would end it silently with
    exit code 0, and importing it from a thread other than the main one (CAF runs each
    calibration in a thread) raises ValueError. The handler in force before stays in
    force. Tested by ``tests/sites/test_jobqueue_import.py``.

    It also copies its configuration template into ``~/.config/dask/jobqueue.yaml`` on
    import (``dask.config.ensure_file``), so that ``caf-hpc sites show`` would write into
    the user's home; the defaults it loads from its own copy apply all the same, and
    caf-hpc reads them from there too. Tested by
    ``tests/sites/test_cli.py::test_read_only_commands_write_nothing``.
    """
    if "dask_jobqueue" in sys.modules:
        return sys.modules["dask_jobqueue"]
    import dask.config

    real_signal, real_ensure_file = signal.signal, dask.config.ensure_file
    previous = signal.getsignal(signal.SIGINT)
    signal.signal = lambda signalnum, handler: previous
    dask.config.ensure_file = lambda *args, **kwargs: None
    try:
        import dask_jobqueue
    finally:
        signal.signal = real_signal
        dask.config.ensure_file = real_ensure_file
    return dask_jobqueue


def render_job_script(job_cls: type, **kwargs: Any) -> str:
    """The job script ``job_cls(**kwargs)`` would submit, without making its ``log_directory``.

    dask-jobqueue's ``Job`` creates ``log_directory`` when it is constructed (it has no
    option not to), which a cluster about to submit needs but ``caf-hpc job-script``, which
    only prints, must not do. A missing log directory is replaced, for the construction
    only, by an empty temporary directory of a name no script contains otherwise, and that
    name by the real one in the script: the script is the one the real directory gives
    (dask-jobqueue writes the directory into the script as it is), and nothing is made
    where the user pointed. Tested by ``tests/sites/test_cli.py::
    test_read_only_commands_write_nothing`` (nothing made) and the job-script goldens of
    ``tests/sites/test_jobscripts.py`` (the directory named in the script).
    """
    import os
    import tempfile

    import dask.config

    log_directory = kwargs.get("log_directory")
    if log_directory is None:
        config_name = kwargs.get("config_name") or getattr(job_cls, "config_name", None)  # as the Job picks it
        log_directory = dask.config.get(f"jobqueue.{config_name}.log-directory", None)
    if log_directory is None or os.path.exists(log_directory):
        return str(job_cls(**kwargs).job_script())
    with tempfile.TemporaryDirectory(prefix="caf-hpc-log-directory-") as stand_in:
        script = str(job_cls(**{**kwargs, "log_directory": stand_in}).job_script())
    return script.replace(stand_in, str(log_directory))
