"""What the batch systems of the testbed have in their queues, by job name."""
from __future__ import annotations

import subprocess
import time
import xml.etree.ElementTree as ElementTree


def jobs_named(system: str, name: str) -> list:
    """Ids of the jobs called ``name`` that ``system`` still knows (pending, running, ending)."""
    if system == "sge":
        out = subprocess.run(["qstat", "-u", "*", "-xml"], capture_output=True, text=True, timeout=30, check=True)
        root = ElementTree.fromstring(out.stdout)
        return [job.findtext("JB_job_number") for job in root.iter("job_list") if job.findtext("JB_name") == name]
    out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True, timeout=30,
                         check=True)
    return out.stdout.split()


def wait_until_no_jobs(system: str, name: str, seconds: float = 30) -> list:
    """Waits (bounded) for the queue to forget ``name``'s jobs; returns what is left."""
    deadline = time.monotonic() + seconds
    left = jobs_named(system, name)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = jobs_named(system, name)
    return left
