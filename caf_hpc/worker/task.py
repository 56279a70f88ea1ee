"""The Dask task that runs one strategy attempt on a worker: the middle of a strategy's path.

    steering process -> (this task) -> strategy child -> (this task) -> steering process

It starts the strategy's process (forked by the worker's fork server, ``forkserver``)
with its output on the algorithm's log file and the pickled ``StrategyCall`` on its
stdin, forwards the frames the child writes to the run's ``distributed.Queue`` as they
arrive, keeps the time limit and returns how the child ended (``protocol.Ended``, with
the number of records it put, and the child's last frames, which it held for the end
instead of putting one more record: ``protocol.ENDING``): the task's return value is the
strategy's end. Every
record it puts (``caf_hpc.protocol``: ``Frames``, ``Started``) names the task and this
attempt, so that when the scheduler re-runs the task after a lost worker, the runner
can tell the attempts apart. The first record says where the attempt runs; a separate
``Started`` is put only for a strategy that sends nothing soon after it starts.

The time limit has one clock, this one. The worker is where the strategy's process
is: it starts counting when the process starts (not while the task waits for a worker
or its records travel), it can end the whole process group at once, and its end says
``timed_out``. The runner keeps no second clock: a worker too hung to keep this one is
removed by the scheduler (``worker_ttl``), which is the strategy's other end, a lost
worker.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import traceback
import uuid
import weakref
from collections.abc import Callable
from typing import Any

import psutil
from distributed import WorkerPlugin

from .. import dask_adapter, protocol
from ..sites import schedulers
from . import forkserver, memory

_READ_SIZE = 1 << 20
_CHECK_INTERVAL = 1.0   # how often a quiet child is checked for time limit and cancellation
_ANNOUNCE_AFTER = 0.2   # a child quiet this long after its start gets a Started record of its own
_DRAIN_WAIT = 0.2      # after the child ended: how long a quiet pipe is waited on before it counts as done
_KILL_GRACE = 5.0
_LEFTOVER_GRACE = 2.0   # how long processes a strategy left running get after SIGTERM before SIGKILL
_EXIT_WAIT = 60.0       # how long a child that closed its message pipe may take to exit


def where() -> protocol.Where:
    """This worker: host, pid, Dask address and batch job (each scheduler's module names its job id's
    variable), for the runner's messages."""
    job_id = next((os.environ[v] for v in schedulers.JOB_ID_VARIABLES if os.environ.get(v)), None)
    try:
        from distributed import get_worker

        return protocol.Where.here(get_worker().address, job_id)
    except ValueError:
        return protocol.Where.here(job_id=job_id)


def _stop(process: Any) -> int | None:
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


#: How a worker that cannot see a path should be fixed, for the messages below.
_SHARED = ("the steering host and the workers must see it at the same path: on a batch site a shared file "
           "system, and with a container a bind (the site's container.binds)")


class Unstartable(Exception):
    """The strategy cannot start on this worker: a path it needs is not there (paths not shared)."""


def _check_inputs(task: protocol.StrategyTask, here: protocol.Where) -> None:
    """Refuses to start a strategy whose input files this worker cannot read, naming them.

    Without this check the algorithm would start and fail somewhere inside ROOT with a
    message about one file; the cause, a file system the worker does not share, is
    clearer before it starts.
    """
    missing = [path for path in task.input_files if not os.access(path, os.R_OK)]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise Unstartable(f"{len(missing)} of its {len(task.input_files)} input file(s) cannot be read on "
                          f"{here.label()}: {shown}; {_SHARED}")


def _open_log(task: protocol.StrategyTask, here: protocol.Where) -> int:
    try:
        return os.open(task.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as err:
        raise Unstartable(f"cannot write its log {task.log_path} on {here.label()} ({err.strerror}). "
                          f"The output directory {task.output_dir} must exist and be writable there; "
                          f"{_SHARED}") from None


def _group_members(pgid: int) -> list:
    """The live processes (``psutil.Process``) in process group ``pgid``, zombies left out."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (OSError, psutil.Error):
            continue  # ended meanwhile
    return members


def _described(process: psutil.Process) -> str:
    try:
        command = " ".join(process.cmdline()) or process.name()
    except psutil.Error:
        command = "?"
    return f"{process.pid} ({command})"


def end_leftovers(pgid: int) -> tuple:
    """Ends what a strategy's process left running in its process group; returns them as "pid (command)".

    A batch system ends a job step's leftover processes the same way: on a worker that
    runs strategy after strategy, a forgotten background process would otherwise hold
    cores, memory and the algorithm's log until the job ends. (A process that made a
    session of its own has left on purpose and is not touched.) The group is looked for
    among all processes only when a signal says it still exists: the usual strategy
    leaves nothing, and pays one system call.
    """
    if pgid <= 1 or pgid == os.getpgid(0):
        return ()  # never this worker's own group
    try:
        os.killpg(pgid, 0)
    except OSError:
        return ()  # the usual case: nothing is left
    members = _group_members(pgid)
    if not members:
        return ()  # only zombies waiting for their new parent
    left = tuple(_described(process) for process in members)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except OSError:
            break
        deadline = time.monotonic() + _LEFTOVER_GRACE
        while members and time.monotonic() < deadline:  # not wait_procs: it waits for zombies, not ours to reap
            time.sleep(0.01)
            members = [process for process in members if _alive(process)]
        if not members:
            break
    return left


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _note_leftovers(task: protocol.StrategyTask, left: tuple) -> None:
    try:
        with open(task.log_path, "a") as log:
            log.write(f"[caf-hpc] the strategy's process left {len(left)} process(es) running, ended after it: "
                      f"{'; '.join(left)}\n")
    except OSError:
        pass  # the runner reports them as well


def _start_child(task: protocol.StrategyTask, message_fd: int, here: protocol.Where) -> Any:
    """Starts the strategy's process with stdout and stderr on the log file and the job's frame on its stdin
    (``process.stdin``, kept open: its closing tells the child that its supervisor is gone).

    Forked by this worker's fork server for the task's preload list (milliseconds), or,
    with ``fork_server`` off, a fresh ``python -m caf_hpc.child`` (about 100 ms, plus the
    preload, paid again by every strategy).
    """
    _check_inputs(task, here)
    log_fd = _open_log(task, here)
    stdin_read, stdin_write = os.pipe()
    # What the child reads first is in its pipe before it starts, as far as the pipe holds it:
    # the child does not wait for this thread after its start (the rest is written below).
    first = protocol.frame(task.payload) if task.fork_server else \
        protocol.frame(protocol.dumps(task.preload)) + protocol.frame(task.payload)
    rest = _write_ahead(stdin_write, first)
    process: forkserver.ForkedChild | subprocess.Popen[bytes]
    try:
        if task.fork_server:
            process = forkserver.shared(task.preload).spawn(stdin_read, log_fd, message_fd, task.output_dir,
                                                            task.imports)
        else:
            process = subprocess.Popen(
                [sys.executable, "-m", "caf_hpc.child", str(message_fd)],
                stdin=stdin_read, stdout=log_fd, stderr=log_fd, pass_fds=(message_fd,),
                cwd=task.output_dir, env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True)
    except BaseException:
        os.close(stdin_write)
        raise
    finally:
        os.close(stdin_read)
        os.close(log_fd)
    pipe = process.stdin = os.fdopen(stdin_write, "wb")
    try:
        pipe.write(rest)
        pipe.flush()
    except BrokenPipeError:
        pass  # the child died at start-up; its exit code tells why
    return process


def _write_ahead(fd: int, data: bytes) -> bytes:
    """Writes as much of ``data`` as the pipe ``fd`` takes without blocking; returns the rest."""
    os.set_blocking(fd, False)
    try:
        return data[os.write(fd, data):]
    except BlockingIOError:
        return data
    finally:
        os.set_blocking(fd, True)


def supervise(task: protocol.StrategyTask, publish: Callable[[protocol.Record], None],
              cancelled: Callable[[], bool] = lambda: False) -> protocol.Ended:
    """Runs the child for ``task``, publishing its records as they come; returns its end.

    ``publish`` must have delivered a record when it returns (the run's queue: the
    scheduler acknowledged the put), so that the end's count of records is a promise.
    """
    attempt, here = uuid.uuid4().hex, where()
    earlier = _ended_before(task, attempt, here)
    if earlier is not None:
        return earlier
    put = 0
    held: list[bytes] = []  # frames read after the child's ENDING frame: they travel with the end

    def publish_counted(record: protocol.Record) -> None:
        nonlocal put
        publish(record)
        put += 1

    ended: dict[str, Any] = {"returncode": None, "timed_out": False, "cancelled": False, "error": None,
                             "unstartable": None, "leftovers": (), "started_at": None, "out_of_memory": None}
    read_fd, write_fd = os.pipe()
    process: Any = None
    try:
        ended["started_at"] = time.time()
        process = _start_child(task, write_fd, here)
        os.close(write_fd)
        write_fd = -1
        started = time.monotonic()
        deadline = started + task.timeout if task.timeout else None
        watch = memory.watch_for(task, process.pid, _group_members)  # None: nothing limits its memory
        announce: float | None = started + _ANNOUNCE_AFTER
        frames = protocol.FrameBuffer()
        hold_until: float | None = None  # holding frames for the end (``held``) until then

        def publish_held() -> None:
            nonlocal announce, hold_until
            if held:
                publish_counted(protocol.Frames(task.key, attempt, here, tuple(held)))
                held.clear()
                announce = None
            hold_until = None

        def forward(wait: float) -> bool | None:
            """Publishes what the child writes within ``wait`` s: True if it wrote, None if not, False at the end.

            From an ``ENDING`` frame on, frames are held for the end: its pipe closes next.
            """
            nonlocal announce, hold_until
            if not select.select([read_fd], [], [], wait)[0]:
                return None
            data = os.read(read_fd, _READ_SIZE)
            if not data:
                return False
            complete = frames.feed(data)
            if protocol.ENDING in complete and hold_until is None:
                hold_until = time.monotonic() + protocol.HOLD_FOR_END
            complete = [frame for frame in complete if frame != protocol.ENDING]
            if hold_until is not None:
                held.extend(complete)
            elif complete:
                publish_counted(protocol.Frames(task.key, attempt, here, tuple(complete)))
                announce = None
            return True

        while True:
            now = time.monotonic()
            wait = min([_CHECK_INTERVAL] + [max(0.0, t - now) for t in (deadline, announce, hold_until,
                                                                           watch.next if watch else None)
                                            if t is not None])
            wrote = forward(wait)
            if wrote is False:
                break
            now = time.monotonic()
            if hold_until is not None and now >= hold_until:
                publish_held()  # it goes on after its final state: what it sent is not kept from the runner
            if announce is not None and now >= announce:
                publish_counted(protocol.Started(task.key, attempt, here))
                announce = None
            if deadline is not None and now >= deadline:
                ended["timed_out"] = True
                break
            if cancelled():
                ended["cancelled"] = True
                break
            if watch is not None and process.poll() is None:
                ended["out_of_memory"] = watch.check(now)
                if ended["out_of_memory"]:
                    memory.note(task.log_path, ended["out_of_memory"])
                    break
            if not wrote and process.poll() is not None:
                # it ended after the select above timed out: what it wrote last may still be in the pipe
                while forward(_DRAIN_WAIT):
                    pass
                break  # the pipe ended, or something it started still holds it: stop listening
        if ended["timed_out"] or ended["cancelled"] or ended["out_of_memory"]:
            ended["returncode"] = _stop(process)
        else:
            try:
                ended["returncode"] = process.wait(timeout=_EXIT_WAIT)
            except subprocess.TimeoutExpired:
                ended["returncode"] = _stop(process)
                ended["error"] = f"the strategy's process did not exit within {_EXIT_WAIT:g} s of closing its " \
                                 "message pipe and was killed"
        if ended["returncode"] is None and not ended["error"]:
            ended["error"] = f"the strategy's process {process.pid} survived SIGKILL (stuck in the kernel?)"
        else:
            ended["leftovers"] = end_leftovers(process.pid)
            if ended["leftovers"]:
                _note_leftovers(task, ended["leftovers"])
    except Unstartable as err:
        ended["unstartable"] = str(err)
    except Exception:  # the supervision itself failed: report it instead of losing it
        ended["error"] = traceback.format_exc()
        try:
            if process is not None and process.poll() is None:
                ended["returncode"] = _stop(process)
        except Exception:  # the fork server is gone too; the child ends when its stdin closes below
            pass
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
        if process is not None:
            process.stdin.close()  # the child's signal that its supervisor is gone, if it still runs
    end = protocol.Ended(task.key, attempt, here, **ended, records=put, frames=tuple(held), ended_at=time.time())
    if not ended["unstartable"]:
        _mark_ended(task, end)
    return end


#: Where a strategy that ended leaves its mark, in its output directory (which every worker shares).
_ENDED_DIRECTORY = ".caf-hpc-ended"
_ENDED_ALREADY = ("it had ended already: Dask ran its task again after losing the worker that held its result, "
                  "which it does while a client still holds the task's future (the run lets it go as it ends)")


def _ended_before(task: protocol.StrategyTask, attempt: str, here: protocol.Where) -> protocol.Ended | None:
    """The end of this task's strategy if it ran to its end before, on a worker since lost; else None.

    Dask computes a finished task again when the worker holding its result is lost while
    a client still wants it: between the task's end and the runner's taking of its result,
    or between a run's end and the scheduler's handling of the run's release. A strategy
    must not run twice (it would write its log and payloads again), so the first end
    leaves itself in a mark, and a second computation returns it: the runner takes it for
    the end of the attempt whose records it has read.
    """
    try:
        with open(os.path.join(task.output_dir, _ENDED_DIRECTORY, task.key), "rb") as mark:
            data = mark.read()
    except OSError:
        return None  # the usual case: never ran
    try:
        end = protocol.loads(data)
        if isinstance(end, protocol.Ended):
            return end
    except Exception:
        pass
    return protocol.Ended(task.key, attempt, here, unstartable=_ENDED_ALREADY)  # a mark it cannot read


def _mark_ended(task: protocol.StrategyTask, end: protocol.Ended) -> None:
    try:
        directory = os.path.join(task.output_dir, _ENDED_DIRECTORY)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, task.key), "wb") as mark:
            mark.write(protocol.dumps(end))
    except OSError:
        pass  # the output directory went away: no strategy can run there again anyway


def run_strategy_task(task: protocol.StrategyTask) -> protocol.Ended:
    """The function submitted to Dask: ``supervise`` with the run's queue as the destination; its return value
    is the strategy's end (``QueueProducer.put`` returns when the scheduler has the record)."""
    queue = dask_adapter.QueueProducer(task.queue_name)
    return supervise(task, lambda record: queue.put(protocol.to_wire(record)), dask_adapter.task_cancelled)


class PreloadPlugin(WorkerPlugin):
    """Starts a worker's fork server for a preload list as soon as the worker is there.

    The server imports and calls the preload (ROOT's interpreter start, a declaration of
    C++ classes: seconds) in the background, on every worker at once and on each worker
    that joins later, instead of on the path of the first strategy each worker gets.
    Starting it only launches the process; a strategy that comes before it is ready waits
    for it as it would have anyway. An empty preload list is started too: the server's
    own start (an interpreter and the strategy machinery) and the worker's import of this
    module cost the first strategy on each worker 85 ms otherwise.
    """

    idempotent = True  # registered by every run(); the first registration holds

    def __init__(self, preload: protocol.Preload) -> None:
        self.preload = protocol.Preload.of(preload)
        self.name = f"caf-hpc-preload-{uuid.uuid5(uuid.NAMESPACE_URL, repr(self.preload)).hex[:12]}"

    def setup(self, worker: Any) -> None:
        forkserver.shared(self.preload)


_preloading: weakref.WeakKeyDictionary[Any, set] = weakref.WeakKeyDictionary()


def start_preloading(client: Any, preload: protocol.Preload) -> None:
    """Has every worker of ``client``'s cluster, present and future, start its fork server for ``preload``."""
    preload = protocol.Preload.of(preload)
    registered = _preloading.setdefault(client, set())
    if preload not in registered:
        client.register_plugin(PreloadPlugin(preload))
        registered.add(preload)
