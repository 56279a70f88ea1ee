"""PBS (OpenPBS, PBS Pro, Torque): ``PBSCluster``; ``qstat`` for its jobs' states.

PBS has no dry submission. When its ``qsub`` is slurm-wlm-torque's wrapper over Slurm (an
``sbatch`` beside it), ``sbatch --test-only`` reads the script's ``#PBS`` lines instead. A
Grid Engine ``qsub`` first on ``PATH`` is reported, since jobs would go there.
"""
from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from typing import Any

from .core import DryRun, Scheduler, Walltime, clock_seconds, query, trial
from .sge import grid_engine_version


def torque_sbatch(qsub: str) -> str | None:
    """The ``sbatch`` beside ``qsub`` when ``qsub`` is slurm-wlm-torque's Perl wrapper (``use Slurm``)."""
    try:
        with open(os.path.realpath(qsub), "rb") as stream:
            if b"Slurm" not in stream.read(1 << 16):
                return None
    except OSError:
        return None
    for directory in (os.path.dirname(qsub), os.path.dirname(os.path.realpath(qsub))):
        sbatch = os.path.join(directory, "sbatch")
        if os.access(sbatch, os.X_OK):
            return sbatch
    return shutil.which("sbatch")


class PBS(Scheduler):
    name = "pbs"
    title = "PBS"
    rank = 2
    cluster_class_name = "PBSCluster"
    walltime = Walltime(re.compile(r"^\d+(:\d{1,2}){0,2}$"), "HH:MM:SS, MM:SS or seconds", "01:00:00")
    project_is_account = True
    job_id_variables = ("PBS_JOBID",)
    pending_states = frozenset({"Q", "W", "H"})
    running_states = frozenset({"R", "E"})

    def walltime_seconds(self, value: Any) -> float | None:
        """``HH:MM:SS``, ``MM:SS`` or seconds."""
        return clock_seconds(str(value))

    def wrong_program(self, found: str) -> str | None:
        version = grid_engine_version(found) if os.path.basename(found) == "qsub" else None
        if version:
            return (f"the qsub on PATH ({found}) is Grid Engine's ({version}), not PBS's; put the PBS commands first "
                    "on PATH (for this machine's testbed: eval \"$(caf-hpc testbed env pbs)\")")
        return None

    def dry_run(self, words: list, path: str, directory: str) -> DryRun:
        sbatch = torque_sbatch(words[0])
        if not sbatch:
            return DryRun(None, f"PBS has no dry submission; qsub found at {words[0]}")
        run = trial([sbatch, "--test-only", path])
        return DryRun(run.ok, f"{run.summary} (qsub is slurm-wlm-torque's wrapper over Slurm)", run.output)

    def query_states(self, ids: Sequence[str], timeout: float) -> dict | None:
        """``qstat IDS``: a header, a line of dashes, then ``id name user time state queue`` per job."""
        states = {}
        for line in query(["qstat", *ids], timeout).splitlines():
            words = line.split()
            if len(words) >= 6 and not line.startswith(("Job", "-")):
                states[words[0].split(".")[0]] = words[-2]
        return states


SCHEDULER = PBS()
