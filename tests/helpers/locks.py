"""Another process holding an output directory's lock, as a second run would meet it."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

_HOLDER = textwrap.dedent("""
    import os, select, sys, time
    from caf_hpc.steering.directory_lock import DirectoryLock
    lock = DirectoryLock.acquire(sys.argv[1], sys.argv[2], beside=sys.argv[3] == "beside")
    child = None
    if sys.argv[4] == "child":  # a child forked as multiprocessing does with its fork start method
        started, ready = os.pipe()
        child = os.fork()
        if child == 0:
            os.write(ready, b"+")  # running: what a fork hands the child has been dealt with
            time.sleep(120)
            os._exit(0)
        os.read(started, 1)
    print("held", child or "", flush=True)
    ready, _, _ = select.select([sys.stdin], [], [], 120)
    how = sys.stdin.readline().strip() if ready else "exit"
    if how == "raise":
        raise RuntimeError("the holder ends by an exception")
    sys.exit(0)  # "exit", or the test's end of the pipe closed: the lock is not released by hand
""")

#: How a holder can end: ``exit`` (sys.exit without releasing), ``raise`` (an uncaught exception), or a signal.
ENDINGS = ("exit", "raise", "SIGTERM", "SIGKILL", "SIGKILL, a child it forked left running")


class Holder(subprocess.Popen):
    """The holding process; ``child`` is the pid of the process it forked, if it was asked to."""

    child: int | None = None


def hold_directory(directory, what: str = "calibration held-by-test", beside: bool = False,
                   child: bool = False) -> Holder:
    """A process that holds ``directory``'s lock until ended (the caller ends it: ``end`` or kill).

    ``child``: it has forked a process first, which sleeps on; its pid is ``holder.child`` (the caller kills it).
    """
    holder = Holder([sys.executable, "-c", _HOLDER, str(directory), what, "beside" if beside else "in",
                               "child" if child else "alone"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    words = holder.stdout.readline().split()
    assert words[:1] == ["held"], words
    holder.child = int(words[1]) if child else None
    return holder


def end(holder: subprocess.Popen, how: str) -> int:
    """Ends the holder ``how`` (one of ``ENDINGS``); returns its exit code once it is gone."""
    if how in ("exit", "raise"):
        holder.stdin.write(how + "\n")
        holder.stdin.flush()
    else:
        holder.send_signal(getattr(signal, how.split(",")[0]))
    return holder.wait(timeout=10)
