"""IBM Spectrum LSF: ``LSFCluster``. No dry submission and no job-state query yet (never run here:
its job script is checked against a golden file only)."""
from __future__ import annotations

import re
from typing import Any

from .core import Scheduler, Walltime


class LSF(Scheduler):
    name = "lsf"
    title = "LSF"
    rank = 4
    cluster_class_name = "LSFCluster"
    walltime = Walltime(re.compile(r"^\d+(:\d{1,2})?$"), "HH:MM or minutes", "01:00")
    job_id_variables = ("LSB_JOBID",)

    def walltime_seconds(self, value: Any) -> float | None:
        """``bsub -W``: ``HH:MM``, or a number of minutes."""
        text = str(value).strip()
        hours, _, minutes = text.rpartition(":")
        if not minutes.isdigit() or (hours and not hours.isdigit()):
            return None
        return float((int(hours or 0) * 60 + int(minutes)) * 60)

    def job_arguments(self, kwargs: dict) -> dict:
        from dask.utils import parse_bytes  # only where a cluster is made: the registry is imported by workers too

        if isinstance(kwargs.get("mem"), str):
            kwargs["mem"] = parse_bytes(kwargs["mem"])  # LSFJob wants bytes as a number
        return kwargs


SCHEDULER = LSF()
