"""One run per output directory: a second is refused at once, naming the holder; the lock dies with it."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from caf_hpc import file_lock
from caf_hpc.steering import directory_lock
from caf_hpc.steering.directory_lock import LOCK_NAME, DirectoryInUse, DirectoryLock
from tests.helpers.locks import ENDINGS, end, hold_directory


def test_a_second_run_is_refused_at_once_naming_the_holder(tmp_path):
    holder = hold_directory(tmp_path / "out")
    try:
        started = time.monotonic()
        with pytest.raises(DirectoryInUse) as caught:
            DirectoryLock.acquire(tmp_path / "out", "calibration second")
        assert time.monotonic() - started < 1
        message = str(caught.value)
        assert f"{tmp_path / 'out'} is in use by calibration held-by-test, process {holder.pid} on host " \
               f"{socket.gethostname()}" in message and "give this one another directory" in message
    finally:
        holder.kill()
        holder.wait(timeout=10)


@pytest.mark.parametrize("how", ENDINGS)
@pytest.mark.parametrize("beside", [False, True], ids=["in", "beside"])
def test_the_lock_dies_with_its_holder_however_it_ends(tmp_path, how, beside):
    """Held while the holder lives, free the moment it is gone: by exit without release, an exception, a
    signal it can handle or one it cannot, and with a process it started still running."""
    holder = hold_directory(tmp_path / "out", beside=beside, child=how.endswith("running"))
    try:
        with pytest.raises(DirectoryInUse, match=f"process {holder.pid} "):
            DirectoryLock.acquire(tmp_path / "out", "calibration next", beside=beside)
        code = end(holder, how)
        expected = {"exit": 0, "raise": 1}[how] if how in ("exit", "raise") else -getattr(signal, how.split(",")[0])
        assert code == expected, code
        with DirectoryLock.acquire(tmp_path / "out", "calibration next", beside=beside) as lock:
            held = json.loads(_lock_file(lock.directory, beside).read_text())
            assert (held["pid"], held["what"]) == (os.getpid(), "calibration next")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        if holder.child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(holder.child, signal.SIGKILL)


def _lock_file(directory: Path, beside: bool) -> Path:
    return directory.parent / f".{directory.name}{LOCK_NAME}" if beside else directory / LOCK_NAME


def test_a_forked_child_neither_holds_nor_releases_its_parents_lock(tmp_path):
    """The child's copy of the lock file is closed at the fork; a release in the child (a ``with`` block
    unwinding there) must leave the parent's lock and its record alone."""
    lock = DirectoryLock.acquire(tmp_path / "out", "calibration parent")
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover - the child's outcome is its exit code
            code = 0
            try:
                lock.release()
            except BaseException:
                code = 1
            os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert json.loads(_lock_file(tmp_path / "out", beside=False).read_text())["what"] == "calibration parent"
        with pytest.raises(DirectoryInUse, match="calibration parent"):
            DirectoryLock.acquire(tmp_path / "out", "calibration second")
    finally:
        lock.release()


def test_a_lock_beside_the_directory_survives_the_directory_being_made_again(tmp_path):
    """CAF empties algorithm_output before every run: a lock file in it would go too."""
    holder = hold_directory(tmp_path / "algorithm_output", beside=True)
    try:
        subprocess.run(["rm", "-rf", str(tmp_path / "algorithm_output")], check=True, timeout=30)
        (tmp_path / "algorithm_output").mkdir()
        with pytest.raises(DirectoryInUse):
            DirectoryLock.acquire(tmp_path / "algorithm_output", "calibration second", beside=True)
    finally:
        holder.kill()
        holder.wait(timeout=10)


@pytest.fixture
def no_locks(monkeypatch):
    """A file system that refuses flock, as some parallel ones do: the heartbeat takes over."""
    def refuse(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(file_lock.fcntl, "flock", refuse)


def _write_holder(directory, **fields):
    directory.mkdir(exist_ok=True)
    record = {"host": "node-17", "pid": 4242, "what": "calibration elsewhere", "since": "then", "beat": time.time()}
    (directory / LOCK_NAME).write_text(json.dumps({**record, **fields}))


def test_without_flock_a_live_heartbeat_refuses_and_a_stale_one_is_taken_over(tmp_path, no_locks):
    _write_holder(tmp_path / "out")
    with pytest.raises(DirectoryInUse, match="process 4242 on host node-17"):
        DirectoryLock.acquire(tmp_path / "out", "calibration here")
    _write_holder(tmp_path / "out", beat=time.time() - directory_lock.STALE - 1)  # its node crashed long ago
    with DirectoryLock.acquire(tmp_path / "out", "calibration here"):
        assert json.loads((tmp_path / "out" / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_without_flock_the_holder_keeps_its_heartbeat_fresh(tmp_path, no_locks, monkeypatch):
    monkeypatch.setattr(directory_lock, "HEARTBEAT", 0.1)
    with DirectoryLock.acquire(tmp_path / "out", "calibration here"):
        first = json.loads((tmp_path / "out" / LOCK_NAME).read_text())["beat"]
        time.sleep(0.5)
        assert json.loads((tmp_path / "out" / LOCK_NAME).read_text())["beat"] > first
