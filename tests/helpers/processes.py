"""Finding the processes a test started, whoever their parent became."""
from __future__ import annotations

import os
import time
import uuid


def new_mark() -> tuple:
    """(variable, value): put into a process's environment, it is inherited by everything it starts."""
    return "CAF_HPC_TEST_MARK", uuid.uuid4().hex


def processes_marked(value: str) -> list:
    """Processes whose environment carries the mark ``value``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as handle:
                    if f"CAF_HPC_TEST_MARK={value}".encode() in handle.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def left_running(value: str, seconds: float = 15) -> list:
    """The marked processes still there after a bounded wait (workers and fork servers end with their parents)."""
    deadline = time.monotonic() + seconds
    while processes_marked(value) and time.monotonic() < deadline:
        time.sleep(0.2)
    return processes_marked(value)


def interrupt_when_ready(process, ready, seconds: float = 60) -> tuple:
    """Sends SIGINT (Ctrl-C) to ``process`` once ``ready()``; returns (its output, seconds it took to end).

    The process is killed if it is still there when this returns, whatever happened.
    """
    import signal
    try:
        deadline = time.monotonic() + seconds
        while not ready():
            assert time.monotonic() < deadline and process.poll() is None, "the run did not get going"
            time.sleep(0.05)
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=seconds)
        return output, time.monotonic() - interrupted
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def ctrl_c_when_ready(process, ready, seconds: float = 60, group: bool = True) -> tuple:
    """Presses Ctrl-C as a terminal does once ``ready()``: SIGINT to the whole process group of
    ``process``, which must have been started with ``start_new_session=True`` (its own group, as
    a command in a shell); with ``group=False`` to ``process`` alone, as ``kill -INT``. Returns
    (stdout, stderr, seconds from the signal until it ended).

    What it started into the same group gets the signal too, as at a terminal. The process
    group is killed if the process is still there when this returns, whatever happened.
    """
    import signal
    try:
        assert os.getpgid(process.pid) == process.pid, "start it with start_new_session=True"
        deadline = time.monotonic() + seconds
        while not ready():
            assert time.monotonic() < deadline and process.poll() is None, "the run did not get going"
            time.sleep(0.005)
        interrupted = time.monotonic()
        (os.killpg if group else os.kill)(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=seconds)
        return stdout, stderr, time.monotonic() - interrupted
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
            process.wait(timeout=10)


def stderr_lines(stderr: str) -> list:
    """The lines of ``stderr``."""
    return stderr.splitlines()


def ctrl_c_noise(stderr: str) -> list:
    """The lines of ``stderr`` that a Ctrl-C should not have caused: every line about the interruption
    but the first, and any traceback, ``KeyboardInterrupt``, or warning or error logged by Dask or caf-hpc
    (the runner's progress lines at INFO are not noise)."""
    noise, said = [], False
    for line in stderr_lines(stderr):
        if "interrupted (Ctrl-C)" in line and not said:
            said = True
        elif "interrupt" in line.lower() or "Traceback" in line or " - WARNING - " in line or " - ERROR - " in line \
                or line.startswith(("WARNING", "ERROR", "CRITICAL", "[WARNING]", "[ERROR]")):
            noise.append(line)
    return noise
