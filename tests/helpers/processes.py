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
