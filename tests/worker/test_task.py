"""The worker side: a strategy's process starts, reports and never outlives its supervisor."""
from __future__ import annotations

import dataclasses
import io
import os
import signal
import sys
import time

import pytest

from caf_hpc import DaskAlgorithmsRunner, protocol
from caf_hpc.basf2_compat import RunnerError
from caf_hpc.protocol import StrategyTask
from caf_hpc.steering import shipping
from caf_hpc.worker import forkserver
from caf_hpc.worker import task as worker_task
from tests.helpers.scripted import ok, scripted


def _task(tmp_path, algorithm, fork_server=True, timeout=None, input_files=()):
    shipping.register_local_modules()
    params = {"database_chain": [], "dependent_databases": [], "output_dir": tmp_path,
              "output_database_dir": tmp_path / "db", "input_files": [], "ignored_runs": []}
    payload = shipping.pack(algorithm, params, None, 0)
    return StrategyTask(key=f"key-{algorithm.name}", algorithm_name=algorithm.name, payload=payload,
                        queue_name="unused", log_path=str(tmp_path / f"{algorithm.name}_stdout"),
                        output_dir=str(tmp_path), timeout=timeout, fork_server=fork_server,
                        input_files=tuple(input_files))


def _wait_gone(pid, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if open(f"/proc/{pid}/stat").read().split()[2] == "Z":
            return True
        time.sleep(0.02)
    return False


def _messages(records, end):
    """What the child sent, in order: the records' frames, then the end's."""
    frames = [f for r in records if isinstance(r, protocol.Frames) for f in r.frames]
    frames += end.frames if end is not None else ()
    return [type(m).__name__ for f in frames for m in protocol.loads(f)]


@pytest.mark.parametrize("fork_server", [True, False], ids=["forked", "fresh-interpreter"])
def test_supervise_publishes_frames_and_returns_the_end_counting_them(tmp_path, fork_server):
    records: list = []
    end = worker_task.supervise(_task(tmp_path, ok("Plain", 3), fork_server), records.append)
    assert isinstance(end, protocol.Ended) and end.returncode == 0 and end.records == len(records)
    if fork_server:  # a fresh interpreter may take longer than _ANNOUNCE_AFTER on a busy machine
        assert all(isinstance(r, protocol.Frames) for r in records)  # no separate start: it was quick
    assert _messages(records, end) == ["Result"] * 3 + ["FinalState"]
    assert end.frames  # its final state came with its end, not in a record of its own
    assert {(r.key, r.attempt) for r in [*records, end]} == {("key-Plain", end.attempt)}
    assert end.where.pid == os.getpid()


def test_frames_sent_before_the_final_state_are_published_as_they_come(tmp_path):
    records: list = []
    algorithm = scripted("Streams", ("results", 2), ("sleep", 0.5), ("final", "COMPLETED"))
    end = worker_task.supervise(_task(tmp_path, algorithm), records.append)
    assert end.records == len(records) >= 1 and _messages(records, None) == ["Result"] * 2
    assert _messages((), end) == ["FinalState"]


def test_a_strategy_that_goes_on_after_its_final_state_has_it_published_meanwhile(tmp_path):
    """The frames held for the end are published after ``HOLD_FOR_END`` if the process does not end:
    the runner is not kept from what it sent while it goes on (here: exit handlers that take a second)."""
    records: list = []
    algorithm = scripted("Lingers", ("results", 1), ("final", "COMPLETED"), ("sleep", 1.5))
    started = time.monotonic()
    end = worker_task.supervise(_task(tmp_path, algorithm), records.append)
    assert time.monotonic() - started >= 1.5 and end.returncode == 0
    assert _messages(records, end) == ["Result", "FinalState"] and not end.frames and end.records == len(records)


def test_a_strategy_quiet_at_first_is_announced_as_started(tmp_path):
    records: list = []
    end = worker_task.supervise(_task(tmp_path, scripted("Slow", ("sleep", 1), ("final", "COMPLETED"))),
                                records.append)
    assert [type(r).__name__ for r in records] == ["Started"] and end.records == 1
    assert _messages(records, end) == ["FinalState"]  # with its end


def test_time_limit_kills_the_whole_process_group(tmp_path):
    grandchild = tmp_path / "grandchild"
    algorithm = scripted("Sleepy", ("spawn_grandchild", str(grandchild)), ("sleep", 60))
    end = worker_task.supervise(_task(tmp_path, algorithm, timeout=2), lambda r: None)
    assert end.timed_out and end.returncode == -signal.SIGTERM
    assert _wait_gone(int(grandchild.read_text()))


def test_log_that_cannot_be_written_is_reported_at_once_not_waited_for(calibrate, tmp_path):
    class LogIsADirectory(DaskAlgorithmsRunner):
        def run(self, iov, iteration):
            (self.output_dir / "Blocked_stdout").mkdir()  # the worker cannot open the algorithm's log
            super().run(iov, iteration)

    started = time.monotonic()
    outcome = calibrate([ok("Blocked")], runner=LogIsADirectory)
    assert isinstance(outcome.error, RunnerError)
    message = str(outcome.error)
    assert "Blocked (calibration cal) could not start: cannot write its log" in message
    assert "Blocked_stdout on host " in message and "(Is a directory)" in message
    assert "must exist and be writable there" in message and "container.binds" in message
    assert time.monotonic() - started < 30


def test_output_directory_the_worker_cannot_see_names_the_path_and_the_fix(tmp_path):
    task = dataclasses.replace(_task(tmp_path, ok("Elsewhere")), output_dir=str(tmp_path / "not-shared"),
                               log_path=str(tmp_path / "not-shared" / "Elsewhere_stdout"))
    end = worker_task.supervise(task, lambda r: None)
    assert end.returncode is None and end.error is None
    assert f"cannot write its log {tmp_path}/not-shared/Elsewhere_stdout on host " in end.unstartable
    assert "(No such file or directory)" in end.unstartable and "shared file system" in end.unstartable


def test_input_files_the_worker_cannot_see_are_named_before_the_strategy_starts(tmp_path):
    present = tmp_path / "present.root"
    present.write_bytes(b"")
    missing = [str(tmp_path / f"missing_{i}.root") for i in range(5)]
    end = worker_task.supervise(_task(tmp_path, ok("Reader"), input_files=[str(present), *missing]), lambda r: None)
    assert end.unstartable.startswith("5 of its 6 input file(s) cannot be read on host ")
    assert ", ".join(missing[:3]) + " and 2 more" in end.unstartable and str(present) not in end.unstartable
    assert not (tmp_path / "Reader_stdout").exists()  # nothing started


@pytest.mark.parametrize("fork_server", [True, False], ids=["forked", "fresh-interpreter"])
def test_process_a_strategy_leaves_running_is_ended_after_it_and_named(tmp_path, fork_server):
    grandchild = tmp_path / "grandchild"
    algorithm = ok("Forgetful", 1, ("spawn_grandchild", str(grandchild)))
    end = worker_task.supervise(_task(tmp_path, algorithm, fork_server), lambda r: None)
    pid = int(grandchild.read_text())
    assert end.returncode == 0 and end.leftovers == (f"{pid} (sleep 120)",)
    assert _wait_gone(pid, seconds=1)  # ended by the time the strategy's end is reported
    assert f"left 1 process(es) running, ended after it: {pid} (sleep 120)" in \
        (tmp_path / "Forgetful_stdout").read_text()


def test_strategy_that_leaves_nothing_running_reports_no_leftovers(tmp_path):
    end = worker_task.supervise(_task(tmp_path, ok("Tidy")), lambda r: None)
    assert end.returncode == 0 and end.leftovers == ()


@pytest.mark.parametrize("fork_server", [True, False], ids=["forked", "fresh-interpreter"])
def test_strategy_process_ends_when_its_supervisor_goes_away(tmp_path, fork_server):
    read_fd, write_fd = os.pipe()
    task = _task(tmp_path, scripted("Orphan", ("sleep", 60)), fork_server)
    process = worker_task._start_child(task, write_fd, worker_task.where())  # the job's frame written too
    os.close(write_fd)
    time.sleep(0.3)
    assert process.poll() is None
    process.stdin.close()  # what happens when the worker process dies
    assert process.wait(timeout=10) == -signal.SIGKILL
    os.close(read_fd)


def _spawn(server, tmp_path):
    """``(child, its stdin's write end, its message pipe's read end)``: a child forked by ``server`` with no job
    yet, its log in ``tmp_path``."""
    stdin_read, stdin_write = os.pipe()
    message_read, message_write = os.pipe()
    log_fd = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT)
    child = server.spawn(stdin_read, log_fd, message_write, str(tmp_path))
    for fd in (stdin_read, message_write, log_fd):
        os.close(fd)
    return child, stdin_write, message_read


def test_fork_server_takes_its_children_along_when_the_worker_goes(tmp_path):
    server = forkserver.ForkServer()
    child, stdin_write, message_read = _spawn(server, tmp_path)
    assert child.poll() is None
    server.close()
    assert _wait_gone(child.pid)
    for fd in (stdin_write, message_read):
        os.close(fd)


def _spare(server, but=()):
    """The pid of the server's child forked ahead (the spare), once there is one."""
    import psutil

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spares = [c.pid for c in psutil.Process(server._process.pid).children() if c.pid not in but]
        if spares:
            return spares[0]
        time.sleep(0.02)
    raise AssertionError("the fork server has no spare child")


def _pipes_held(pid):
    """The pipe inodes process ``pid`` holds open."""
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("pipe:["):
            held.add(int(target[6:-1]))
    return held


def test_a_spare_that_died_unused_is_replaced_without_holding_the_strategys_pipes(tmp_path):
    """The server forks a child ahead of each request; one killed before its request must not
    fail the request, and the next one must not hold the request's message pipe (the
    strategy's end would not be seen while it lives)."""
    server = forkserver.ForkServer()
    try:
        dead = _spare(server)
        os.kill(dead, signal.SIGKILL)
        assert _wait_gone(dead)
        _spare(server, but=(dead,))  # reaped and replaced (a killed process shows as a zombie before its
        # threads have ended and its descriptors are closed: a request sent then would still be taken)
        child, stdin_write, message_read = _spawn(server, tmp_path)
        assert child.pid != dead and child.poll() is None
        spare = _spare(server, but=(child.pid, dead))
        assert os.fstat(message_read).st_ino not in _pipes_held(spare)
        os.close(stdin_write)  # no job: the child ends
        assert child.wait(timeout=10) != 0
        assert os.read(message_read, 100) == b""  # its end is seen on the message pipe
        os.close(message_read)
    finally:
        server.close()


def test_cancelling_the_dask_task_stops_its_strategy_process(tmp_path):
    from distributed import Queue

    from caf_hpc.steering import clusters

    client = clusters.client_for(DaskAlgorithmsRunner.settings())
    pid_file = tmp_path / "pid"
    task = _task(tmp_path, scripted("Endless", ("record_pid", str(pid_file)), ("sleep", 120)))
    queue = Queue("caf-hpc-test-cancel", client=client)
    task = dataclasses.replace(task, queue_name=queue.name)
    future = client.submit(worker_task.run_strategy_task, task, pure=False)
    try:
        assert isinstance(protocol.from_wire(queue.get(timeout=30)), protocol.Started)
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        pid = int(pid_file.read_text())
        future.cancel()
        assert _wait_gone(pid, seconds=15)  # about 1 s: the supervisor checks once a second
    finally:
        queue.close()


def test_what_a_child_wrote_just_before_it_ended_is_not_left_in_the_pipe(tmp_path, monkeypatch):
    """The race: the supervisor's wait times out, the child writes its last frame and exits, then
    the supervisor sees it exited. That frame must still be forwarded."""
    class EndsDuringTheCheck:
        pid = 2 ** 22 + 1  # above pid_max: no process group of that number exists

        def __init__(self, message_fd):
            self.fd, self.stdin = os.dup(message_fd), io.BytesIO()

        def poll(self):
            if self.fd >= 0:
                final = protocol.frame(protocol.dumps([protocol.FinalState("COMPLETED")]))
                protocol.write_all(self.fd, final)
                os.close(self.fd)
                self.fd = -1
            return 0

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(worker_task, "_start_child", lambda task, message_fd, here: EndsDuringTheCheck(message_fd))
    records: list = []
    worker_task.supervise(_task(tmp_path, ok("Racy")), records.append)
    sent = [m for r in records if isinstance(r, protocol.Frames) for f in r.frames for m in protocol.loads(f)]
    assert sent == [protocol.FinalState("COMPLETED")]


BESIDE = """
import os, types
os.environ["CAF_HPC_TEST_IMPORTS"] = os.environ.get("CAF_HPC_TEST_IMPORTS", "") + "x"  # once per import


def declare():
    os.environ["CAF_HPC_TEST_DECLARED"] = "yes"


def make():
    steps = [("print", "built by the factory"), ("print_environ", "CAF_HPC_TEST_IMPORTS"),
             ("print_environ", "CAF_HPC_TEST_DECLARED"), ("results", 1), ("final", "COMPLETED")]
    return types.SimpleNamespace(name="Beside", steps=steps, setInputFileNames=lambda files: None)
"""


@pytest.mark.parametrize("fork_server", [True, False], ids=["forked", "fresh-interpreter"])
def test_preload_and_factory_from_a_module_the_worker_cannot_import_arrive_as_source(tmp_path, monkeypatch,
                                                                                     fork_server):
    """The strategy's process (or its fork server) gets the module beside the steering script with the
    preload list, imports it, top-level code included, and calls the function; the factory from the
    same module finds it imported (its top-level code ran once)."""
    directory = tmp_path / "steering"
    directory.mkdir()
    (directory / "beside_preload.py").write_text(BESIDE)
    monkeypatch.syspath_prepend(str(directory))  # here only: the worker's processes do not have it
    try:  # imports it here, as a steering script does
        preload = shipping.preload_for(["beside_preload:declare"])
        algorithm = scripted("Beside")
        params = {"database_chain": [], "dependent_databases": [], "output_dir": tmp_path,
                  "output_database_dir": tmp_path / "db", "input_files": [], "ignored_runs": []}
        payload = shipping.pack(algorithm, params, None, 0, factory="beside_preload:make", preload=preload.entries)
    finally:
        sys.modules.pop("beside_preload", None)
        monkeypatch.delenv("CAF_HPC_TEST_IMPORTS")  # the worker's processes must run it themselves
    assert [source.name for source in preload.modules] == ["beside_preload"]
    task = dataclasses.replace(_task(tmp_path, algorithm, fork_server), payload=payload, preload=preload)
    end = worker_task.supervise(task, lambda record: None)
    log = (tmp_path / "Beside_stdout").read_text()
    assert end.returncode == 0, log
    assert "built by the factory" in log and "CAF_HPC_TEST_IMPORTS=x\n" in log, log
    assert "CAF_HPC_TEST_DECLARED=yes" in log and "failed on this worker" not in log, log


def test_a_second_computation_of_an_ended_task_returns_the_first_end_and_runs_nothing(tmp_path):
    """Dask computes a finished task again when the worker holding its result is lost while a client wants it
    (the runner, before it took the end): the strategy does not run again, and the end is the first one, whose
    records the runner has read."""
    runs = tmp_path / "runs"
    task = _task(tmp_path, scripted("Once", ("record", str(runs), "ran"), ("results", 2), ("final", "COMPLETED")))
    first = worker_task.supervise(task, lambda r: None)
    again: list = []
    second = worker_task.supervise(task, again.append)
    assert second == first and first.returncode == 0 and first.records + len(first.frames) >= 1
    assert again == [] and runs.read_text() == "ran\n"


INSTALLED = """
import os
import threading

from caf_hpc.extras.standins.strategies import AlgorithmStrategy

with open({notes!r}, "a") as note:  # every process that imports this module, at its import
    note.write(f"imported {{os.getpid()}}\\n")
{extra}


class Noted(AlgorithmStrategy):
    def run(self, iov, iteration, queue):
        with open({notes!r}, "a") as note:
            note.write(f"ran {{os.getpid()}}\\n")
        queue.put({{"type": "final_state", "value": "COMPLETED"}})
"""


@pytest.mark.parametrize("extra,ahead", [
    ("", True),
    ("threading.Thread(target=threading.Event().wait, daemon=True).start()", False),
    ("print('hello from the import')", False),
    ("HELD = open(__file__)", False),
], ids=["harmless", "starts-a-thread", "prints", "keeps-a-file-open"])
def test_fork_server_imports_a_strategys_installed_module_once_when_that_is_harmless(tmp_path, monkeypatch,
                                                                                      extra, ahead):
    """A strategy class that travels by reference (installed, as a basf2 release's) is imported by the
    worker's fork server after the first strategy names it, so that the strategies after it do not import
    it again; a module whose import starts a thread, writes output or keeps a file open is left to each
    strategy's process, as before (a fork server holding a thread would fork children with its locks held)."""
    release = tmp_path / "release"
    release.mkdir()
    notes = tmp_path / "notes"
    module_name = f"installed_strategy_{len(extra)}"
    (release / f"{module_name}.py").write_text(INSTALLED.format(notes=str(notes), extra=extra))
    monkeypatch.setenv("BELLE2_LOCAL_DIR", str(release))  # counts as installed: the class travels by reference
    monkeypatch.setenv("PYTHONPATH", str(release) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.syspath_prepend(str(release))
    monkeypatch.setattr(forkserver, "_servers", {})  # a server of its own, started with the release on its path
    try:
        module = __import__(module_name)
        runs = []
        for i in range(3):
            algorithm = ok(f"Installed{i}")
            algorithm.strategy = module.Noted
            task = _task(tmp_path, algorithm)
            assert module_name in task.payload.decode(errors="replace")  # by reference: named, not sent
            task = dataclasses.replace(task, imports=shipping.modules_by_reference(algorithm))
            assert module_name in task.imports
            end = worker_task.supervise(task, lambda record: None)
            assert end.returncode == 0, (tmp_path / f"Installed{i}_stdout").read_text()
            runs.append(end)
    finally:
        sys.modules.pop(module_name, None)
        for server in forkserver._servers.values():
            server.close()
    lines = [line.split() for line in notes.read_text().splitlines()]
    ran = [int(pid) for what, pid in lines if what == "ran"]
    imported_in = {int(pid) for what, pid in lines if what == "imported"} - {os.getpid()}
    assert len(ran) == 3
    if ahead:  # the first strategy's process imported it; the server after it; the others found it imported
        assert ran[0] in imported_in and not imported_in & set(ran[1:]), lines
    else:
        assert set(ran) <= imported_in, lines
        if "print" in extra:  # its output stays in each strategy's log
            assert all("hello from the import" in (tmp_path / f"Installed{i}_stdout").read_text() for i in range(3))
