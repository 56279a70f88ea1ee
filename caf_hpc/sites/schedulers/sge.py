"""Grid Engine (SGE, Son of Grid Engine, OGS): ``SGECluster``; ``qsub -w v`` as its dry submission,
``qstat -xml`` for its jobs' states. Its ``qsub`` shares PBS's name: which one is on ``PATH`` is checked."""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from typing import Any

from .core import DryRun, Scheduler, Walltime, clock_seconds, query, run_command, trial


def grid_engine_version(qsub: str) -> str | None:
    """``"SGE 8.1.9"`` when ``qsub`` is Grid Engine's (its ``-help`` starts with the version), else None."""
    _, output = run_command([qsub, "-help"])
    first = output.splitlines()[0] if output else ""
    return first if any(word in first for word in ("GE ", "Grid Engine", "OGS")) else None


class GridEngine(Scheduler):
    name = "sge"
    title = "Grid Engine"
    rank = 3
    cluster_class_name = "SGECluster"
    walltime = Walltime(re.compile(r"^\d+(:\d{1,2}){0,2}$"), "HH:MM:SS, MM:SS or seconds", "01:00:00")
    job_id_variables = ("JOB_ID",)
    pending_states = frozenset({"qw", "hqw", "Rq"})
    running_states = frozenset({"r", "t"})

    def walltime_seconds(self, value: Any) -> float | None:
        """``HH:MM:SS``, ``MM:SS`` or seconds."""
        return clock_seconds(str(value))

    def wrong_program(self, found: str) -> str | None:
        if os.path.basename(found) == "qsub" and not grid_engine_version(found):
            return f"the qsub on PATH ({found}) is not Grid Engine's; jobs would go elsewhere"
        return None

    def dry_run(self, words: list, path: str, directory: str) -> DryRun:
        run = trial([*words, "-w", "v", path])
        if not run.ok and "found suitable queue" in run.output:  # some versions exit 1 even then
            return DryRun(True, "qsub -w v accepted the job", run.output)
        return run

    def query_states(self, ids: Sequence[str], timeout: float) -> dict | None:
        try:
            root = ElementTree.fromstring(query(["qstat", "-u", "*", "-xml"], timeout) or "<none/>")
        except ElementTree.ParseError:
            return None
        return {job.findtext("JB_job_number"): job.findtext("state") for job in root.iter("job_list")}


SCHEDULER = GridEngine()
