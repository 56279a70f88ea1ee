"""Which of a cluster's batch jobs wait in the queue and which run, asked of the batch system.

dask-jobqueue submits and cancels jobs but never asks for their state, and a strategy
waiting for a worker is explained only by it. Jobs pending in the queue mean the site
is busy and the wait is normal. Jobs running with no worker connected mean the worker
fails to start, and the job logs say why. One query command per scheduler, each checked
against the testbed's real batch system (``tests/batch/test_job_states.py``); for the
others the state stays unknown and nothing is claimed. Each query runs in a session of
its own: a Ctrl-C at the terminal is the steering process's to handle, not the query's.
"""
from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ElementTree
from typing import Optional, Sequence

#: Each batch system's state codes, as pending or running (the rest: ending, held, ...).
_PENDING = {"PENDING", "CONFIGURING", "Q", "W", "H", "qw", "hqw", "Rq"}
_RUNNING = {"RUNNING", "COMPLETING", "R", "r", "t", "E"}


def _slurm(ids: Sequence[str], timeout: float) -> dict:
    done = subprocess.run(["squeue", "--noheader", "--format=%i %T", f"--jobs={','.join(ids)}"],
                          capture_output=True, text=True, timeout=timeout,
                          start_new_session=True)
    return dict(line.split()[:2] for line in done.stdout.splitlines() if len(line.split()) >= 2)


def _pbs(ids: Sequence[str], timeout: float) -> dict:
    """``qstat IDS``: a header, a line of dashes, then ``id name user time state queue`` per job."""
    done = subprocess.run(["qstat", *ids], capture_output=True, text=True, timeout=timeout,
                          start_new_session=True)
    states = {}
    for line in done.stdout.splitlines():
        words = line.split()
        if len(words) >= 6 and not line.startswith(("Job", "-")):
            states[words[0].split(".")[0]] = words[-2]
    return states


def _sge(ids: Sequence[str], timeout: float) -> dict:
    done = subprocess.run(["qstat", "-u", "*", "-xml"], capture_output=True, text=True, timeout=timeout,
                          start_new_session=True)
    root = ElementTree.fromstring(done.stdout or "<none/>")
    return {job.findtext("JB_job_number"): job.findtext("state") for job in root.iter("job_list")}


QUERIES = {"slurm": _slurm, "pbs": _pbs, "sge": _sge}


def job_states(scheduler: str, ids: Sequence[str], timeout: float = 10) -> Optional[dict]:
    """``{job id: "pending" | "running" | "other"}`` for the jobs the batch system still lists;
    None when it cannot be asked (an unknown scheduler, a command missing or failing)."""
    query = QUERIES.get(scheduler)
    if query is None or not ids:
        return None
    try:
        states = query([str(i) for i in ids], timeout)
    except (OSError, subprocess.SubprocessError, ElementTree.ParseError):
        return None
    wanted = {str(i) for i in ids}
    return {job: "pending" if state in _PENDING else "running" if state in _RUNNING else "other"
            for job, state in states.items() if job in wanted}


def describe(scheduler: str, ids: Sequence[str]) -> str:
    """'3 batch job(s) submitted (ids): 2 pending, 1 running', as far as the batch system says."""
    text = f"{len(ids)} batch job(s) submitted ({', '.join(map(str, ids)) or 'none yet'})"
    states = job_states(scheduler, ids)
    if states is None:
        return text
    counts = {kind: sum(1 for s in states.values() if s == kind) for kind in ("pending", "running", "other")}
    gone = len(ids) - len(states)
    parts = [f"{n} {kind}" for kind, n in counts.items() if n] + ([f"{gone} no longer queued"] if gone else [])
    return f"{text}: {', '.join(parts)}"
