"""Importing dask-jobqueue through caf-hpc leaves Ctrl-C alone and works from CAF's threads."""
from __future__ import annotations

import subprocess
import sys

CHECK = """
import signal, threading
from caf_hpc.sites import schedulers
seen = []
thread = threading.Thread(target=lambda: seen.append(schedulers.get("slurm").cluster_class().__name__))
thread.start(); thread.join(timeout=60)
print(seen, signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""


def test_dask_jobqueue_imports_in_a_thread_and_keeps_the_sigint_handler():
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["['SLURMCluster']", "True"], done.stderr
