"""The local default: worker processes on this machine (``clusters.local_cluster``), no batch jobs.

A site config may say ``scheduler: local`` to set its number of workers and its dashboard;
there is nothing to submit, so scale, containers, TLS and job scripts do not apply.
"""
from __future__ import annotations

from typing import Any

from .core import Scheduler


class Local(Scheduler):
    name = "local"
    title = "the local cluster"
    rank = 0
    is_batch = False
    required_keys = ()
    #: All its ``cluster`` section takes: the runner settings of the same names.
    settings_keys = ("n_workers", "dashboard_address")
    cluster_kinds = {"n_workers": "count", "dashboard_address": "string"}
    unused_sections = {
        "scale": "does not apply to local; set cluster.n_workers instead",
        "container": "does not apply to local (its workers are processes on this machine)",
        "security": "does not apply to local (its scheduler and workers listen on 127.0.0.1 only)",
        "dask_scheduler": "does not apply to local (its scheduler is a process on this machine)",
    }

    def cluster_keys(self) -> tuple:
        return self.settings_keys

    def cluster_class(self) -> Any:
        raise TypeError("the local cluster is not a dask-jobqueue cluster")


SCHEDULER = Local()
