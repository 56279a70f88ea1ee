"""Slurm: ``SLURMCluster``; ``sbatch --test-only`` as its dry submission, ``squeue`` for its jobs' states."""
from __future__ import annotations

import re
from collections.abc import Sequence
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

    def query_states(self, ids: Sequence[str], timeout: float) -> dict | None:
        output = query(["squeue", "--noheader", "--format=%i %T", f"--jobs={','.join(ids)}"], timeout)
        return dict(line.split()[:2] for line in output.splitlines() if len(line.split()) >= 2)


SCHEDULER = Slurm()
