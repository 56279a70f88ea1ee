"""Another process holding an output directory's lock, as a second run would meet it."""
from __future__ import annotations

import subprocess
import sys
import textwrap

_HOLDER = textwrap.dedent("""
    import sys, time
    from caf_hpc.steering.directory_lock import DirectoryLock
    lock = DirectoryLock.acquire(sys.argv[1], sys.argv[2], beside=sys.argv[3] == "beside")
    print("held", flush=True)
    time.sleep(120)
""")


def hold_directory(directory, what: str = "calibration held-by-test", beside: bool = False) -> subprocess.Popen:
    """A process that holds ``directory``'s lock until killed (the caller kills it)."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(directory), what, "beside" if beside else "in"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder
