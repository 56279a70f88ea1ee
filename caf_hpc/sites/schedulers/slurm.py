"""Slurm: ``SLURMCluster``; ``sbatch --test-only`` as its dry submission, ``squeue`` for its jobs' states."""
from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .core import DryRun, Scheduler, Walltime, query, trial

#: ``--mem`` as Slurm writes it: a number, in megabytes unless a unit follows.
MEMORY = re.compile(r"^\d+[KMGT]?$", re.I)


def slurm_memory(value: Any) -> tuple:
    """``job_mem`` goes to ``#SBATCH --mem`` unchanged: Slurm's own notation, not dask's."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value), None
    if not isinstance(value, str) or not MEMORY.match(value):
        return value, f"{value!r} is not a Slurm memory size; write e.g. '4000M' or '4G'"
    return value, None


def slurm_seconds(text: str) -> float | None:
    """Seconds of a Slurm time (``--time``, ``squeue %L``): ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``,
    ``D-HH:MM``, ``D-HH:MM:SS``; None for ``UNLIMITED``/``INFINITE`` and anything else it cannot read.

    Slurm reads a lone number as minutes and two fields as minutes and seconds (``man sbatch``, ``--time``).
    """
    text = text.strip()
    days = 0
    if "-" in text:
        day, _, text = text.partition("-")
        if not day.isdigit():
            return None
        days = int(day)
        fields = text.split(":")
        fields += ["0"] * (3 - len(fields))  # D-HH, D-HH:MM: hours first
    else:
        fields = text.split(":")
        if len(fields) == 1:
            fields = ["0", fields[0], "0"]  # minutes
        elif len(fields) == 2:
            fields = ["0", *fields]  # minutes and seconds
    if len(fields) != 3 or not all(field.isdigit() for field in fields):
        return None
    hours, minutes, seconds = (int(field) for field in fields)
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


class Slurm(Scheduler):
    name = "slurm"
    title = "Slurm"
    rank = 1
    cluster_class_name = "SLURMCluster"
    walltime = Walltime(re.compile(r"^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+(:\d{1,2}){0,2}|UNLIMITED|INFINITE)$",
                                   re.I),
                        "MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS", "01:00:00")
    cluster_kinds = {"job_mem": slurm_memory}
    project_is_account = True
    job_id_variables = ("SLURM_JOB_ID",)
    pending_states = frozenset({"PENDING", "CONFIGURING"})
    running_states = frozenset({"RUNNING", "COMPLETING"})

    def dry_run(self, words: list, path: str, directory: str) -> DryRun:
        return trial([*words, "--test-only", path])

    def walltime_seconds(self, value: Any) -> float | None:
        return slurm_seconds(str(value))

    def job_time_left(self, environ: Mapping[str, str], timeout: float = 10) -> float | None:
        """``SLURM_JOB_END_TIME`` (Slurm 23.02 and later), else ``squeue -h -o %L -j $SLURM_JOB_ID``: the
        time left as Slurm counts it, which also knows a limit changed after submission (``scontrol update``)."""
        end = environ.get("SLURM_JOB_END_TIME", "")
        if end.isdigit():
            return float(end) - time.time()
        job = environ.get("SLURM_JOB_ID", "")
        if not job:
            return None
        try:
            output = query(["squeue", "--noheader", "--format=%L", f"--jobs={job}"], timeout).strip()
        except (OSError, subprocess.SubprocessError):
            return None
        return slurm_seconds(output) if output else None

    def query_states(self, ids: Sequence[str], timeout: float) -> dict | None:
        output = query(["squeue", "--noheader", "--format=%i %T", f"--jobs={','.join(ids)}"], timeout)
        return dict(line.split()[:2] for line in output.splitlines() if len(line.split()) >= 2)


SCHEDULER = Slurm()
