"""HTCondor: ``HTCondorCluster``; ``condor_submit -dry-run`` as its dry submission. No job-state query yet
(never run here: its job script is checked against a golden file only)."""
from __future__ import annotations

import os

from .core import DryRun, Scheduler, trial


class HTCondor(Scheduler):
    name = "htcondor"
    title = "HTCondor"
    rank = 5
    cluster_class_name = "HTCondorCluster"
    required_keys = ("cores", "memory", "disk")
    #: Its extra directives are submit-file attributes (key = value), not lines.
    cluster_kinds = {"job_extra_directives": "mapping"}
    job_id_variables = ("CONDOR_JOBID",)
    native_command_extras = True

    def dry_run(self, words: list, path: str, directory: str) -> DryRun:
        return trial([*words, "-dry-run", os.path.join(directory, "ads"), path])


SCHEDULER = HTCondor()
