"""One run per output directory: a second is refused at once, naming the holder; the lock dies with it."""
from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from tests.helpers.locks import hold_directory

from caf_hpc.steering import directory_lock
from caf_hpc.steering.directory_lock import LOCK_NAME, DirectoryInUse, DirectoryLock

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


def test_the_lock_dies_with_its_holder_however_it_ends(tmp_path):
    holder = hold_directory(tmp_path / "out", beside=True)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    with DirectoryLock.acquire(tmp_path / "out", "calibration next", beside=True):
        pass


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
    monkeypatch.setattr(directory_lock.fcntl, "flock", refuse)


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
