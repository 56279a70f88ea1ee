"""What a site config may contain, whatever its scheduler: its sections, and the keys and value kinds of each.

The ``cluster`` section is handed to a dask-jobqueue class, so its keys are that
class's own argument names, read from the class signatures and dask-jobqueue's
``jobqueue.yaml`` rather than listed here: a new dask-jobqueue argument is allowed as
soon as dask-jobqueue has it, and a section of an existing ``jobqueue.yaml`` (whose
keys use ``-`` instead of ``_``) pastes in unchanged. The other sections are caf-hpc's.
What only one scheduler has (its required keys, walltime format, ...) is in its own module
of ``schedulers``.
"""
from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from functools import cache
from typing import Any

from .. import resources as resource_rules

SECTIONS = ("scheduler", "description", "cluster", "pools", "scale", "container", "security", "runner",
            "dask_scheduler")
CONTAINER_RUNTIMES = ("apptainer", "singularity", "podman")

#: dask-jobqueue arguments caf-hpc sets itself, and what to write instead.
MANAGED = {
    "security": "set by caf-hpc; use the security section (tls, directory)",
    "protocol": "set by caf-hpc; use the security section (tls, directory)",
    "n_workers": "use the scale section (minimum_jobs, maximum_jobs and idle_grace, or a fixed number of jobs)",
    "dashboard_address": "put it in cluster.scheduler_options, as dask-jobqueue requires",
    "host": "put it in cluster.scheduler_options, as dask-jobqueue requires",
    "config_name": "caf-hpc takes every value from the site config; paste that section's keys here instead",
    "scheduler": "set by dask-jobqueue when it submits a job",
}
#: Arguments that only make sense from Python, never in a config file.
_INTERNAL = {"loop", "asynchronous", "job_cls", "scheduler_cls", "extra", "job_extra", "env_extra", "header_skip"}

#: dask-jobqueue's deprecated names and their replacements.
RENAMED = {
    "extra": "worker_extra_args",
    "job_extra": "job_extra_directives",
    "env_extra": "job_script_prologue",
    "header_skip": "job_directives_skip",
}
#: ``jobqueue.yaml`` calls the job name ``name``; the class argument is ``job_name``.
ALIASES = {"name": "job_name"}

#: Keys caf-hpc adds to every batch scheduler (dask-jobqueue 0.9 has them for HTCondor only).
COMMAND_EXTRAS = ("submit_command_extra", "cancel_command_extra")

#: Value kinds of cluster keys whose ``jobqueue.yaml`` default (``null``) does not tell.
CLUSTER_KINDS = {
    "cores": "count",
    "processes": "count",
    "job_cpu": "count",
    "ncpus": "count",
    "n_workers": "count",
    "memory": "memory",
    "disk": "memory",
    "mem": "memory",
    "walltime": "walltime",
    "death_timeout": "seconds",
    "nanny": "bool",
    "use_stdin": "bool",
    "job_script_prologue": "strings",
    "worker_extra_args": "strings",
    "job_directives_skip": "strings",
    "submit_command_extra": "strings",
    "cancel_command_extra": "strings",
    "job_extra_directives": "strings",
    "scheduler_options": "mapping",
    "silence_logs": "string",
}

#: Keys whose values dask-jobqueue writes, as they are, into a batch directive or the worker's command
#: line: neither is quoted, so these take no white space and nothing a shell would read.
UNQUOTED_KEYS = ("queue", "account", "project", "job_name", "log_directory", "local_directory", "python",
                 "interface", "worker_extra_args")
#: What such a value may hold: letters, digits and these (a path, a host, an account, ~ for home).
UNQUOTED_SAFE = r"[A-Za-z0-9_./~@%+=:,#-]+"

#: caf-hpc's own sections: key -> value kind.
SCALE_KEYS = {"jobs": "count0", "minimum_jobs": "count0", "maximum_jobs": "count0", "idle_grace": "seconds0"}
#: The ``scale`` keys of adaptive scaling (the default on batch sites); ``jobs`` asks for a fixed number instead.
ADAPTIVE_KEYS = ("minimum_jobs", "maximum_jobs", "idle_grace")
CONTAINER_KEYS = {"runtime": "string", "image": "string", "binds": "strings", "env": "env", "options": "strings"}
SECURITY_KEYS = {"tls": "bool", "directory": "optional_string"}
RUNNER_KEYS: dict[str, Any] = {"timeout": "optional_seconds", "retries": "count0", "worker_wait": "seconds",
                               "preload": "preload", "resources": resource_rules.site_value,
                               "walltime_margin": "seconds", "expected_durations": "durations"}
DASK_SCHEDULER_KEYS = {"placement": "placement", "job": "mapping", "start_wait": "seconds",
                       "client_timeout": "seconds", "directory": "string"}
SECTION_KEYS: dict[str, dict[str, Any]] = {"scale": SCALE_KEYS, "container": CONTAINER_KEYS,
                                           "security": SECURITY_KEYS, "runner": RUNNER_KEYS,
                                           "dask_scheduler": DASK_SCHEDULER_KEYS}

#: Where the Dask scheduler runs (``dask_scheduler.placement``): in the steering process on the submit host
#: (dask-jobqueue's way, the default), or in a batch job of its own (``sites/scheduler_job.py``).
PLACEMENTS = ("submit-host", "job")
#: ``dask_scheduler``'s defaults; ``{site}`` in the directory is the site's name.
DASK_SCHEDULER_DEFAULTS = {"placement": "submit-host", "start_wait": 300, "client_timeout": 120,
                           "directory": os.path.join("~", ".caf-hpc", "schedulers", "{site}")}
#: ``cluster`` keys that ``dask_scheduler.job`` may not change for the scheduler's job, and why.
SCHEDULER_JOB_NOT_KEYS = {
    "processes": "the scheduler is one process",
    "nanny": "the scheduler has no nanny",
    "worker_command": "the scheduler's job runs caf-hpc's scheduler command",
    "worker_extra_args": "they are the workers' arguments; set the scheduler's in cluster.scheduler_options",
    "death_timeout": "a worker's; the scheduler's job ends on dask_scheduler.client_timeout",
    "scheduler_options": "set it in cluster.scheduler_options, for wherever the scheduler runs",
    "local_directory": "a worker's spill directory",
    "n_workers": "use the scale section",
    "shared_temp_directory": "caf-hpc keeps TLS files in security.directory",
    "silence_logs": "a cluster option, not a job's",
    "name": "a cluster option, not a job's",
}
#: ``cluster.scheduler_options`` a scheduler in a batch job takes on its command line; any other key must be one
#: of Dask's ``distributed.scheduler`` settings, which it gets as Dask config.
SCHEDULER_JOB_OPTIONS = ("host", "port", "interface", "dashboard_address")

#: Where TLS files go unless the site says otherwise; ``{site}`` is the site's name.
DEFAULT_TLS_DIRECTORY = os.path.join("~", ".caf-hpc", "tls", "{site}")


def normalise_key(key: str) -> str:
    """``jobqueue.yaml`` writes ``death-timeout``; the Python argument is ``death_timeout``."""
    return str(key).replace("-", "_")


def jobqueue() -> Any:
    """``dask_jobqueue``, imported without its SIGINT handler (see ``dask_adapter.import_jobqueue``)."""
    from ..dask_adapter import import_jobqueue

    return import_jobqueue()


def _parameters(function: Callable[..., Any]) -> set[str]:
    return {name for name, p in inspect.signature(function).parameters.items()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and name != "self"}


@cache
def _jobqueue_defaults() -> dict:
    """dask-jobqueue's own ``jobqueue.yaml`` (not the user's copy), keys normalised."""
    import yaml

    path = os.path.join(os.path.dirname(jobqueue().__file__), "jobqueue.yaml")
    with open(path, encoding="utf-8") as stream:
        raw = yaml.safe_load(stream)["jobqueue"]
    return {scheduler: {normalise_key(k): v for k, v in section.items()} for scheduler, section in raw.items()}


def jobqueue_defaults(scheduler: str) -> dict:
    """dask-jobqueue's defaults for ``scheduler``'s section of ``jobqueue.yaml``."""
    return dict(_jobqueue_defaults().get(scheduler, {}))


def job_class_keys(job_cls: Any, config_name: str) -> set:
    """The ``cluster`` keys of a dask-jobqueue job class: its arguments, ``Job``'s and ``JobQueueCluster``'s,
    and its section of ``jobqueue.yaml``, without those caf-hpc sets itself or only Python can give."""
    core = jobqueue().core
    names = _parameters(job_cls.__init__) | _parameters(core.Job.__init__) | _parameters(core.JobQueueCluster.__init__)
    names |= set(_jobqueue_defaults().get(config_name, {}))
    names |= set(COMMAND_EXTRAS)
    return names - set(MANAGED) - _INTERNAL - set(ALIASES)


@cache
def cluster_only_keys() -> frozenset:
    """Cluster-class arguments that dask-jobqueue does not pass on to the job class."""
    JobQueueCluster = jobqueue().JobQueueCluster

    return frozenset(_parameters(JobQueueCluster.__init__) - {"interface", "protocol", "config_name"})


def default_kind(config_name: str, key: str) -> str:
    """The value kind of a cluster key: from caf-hpc's table, else from its ``jobqueue.yaml`` default."""
    if key in CLUSTER_KINDS:
        return CLUSTER_KINDS[key]
    default = _jobqueue_defaults().get(config_name, {}).get(key)
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "count"
    if isinstance(default, list):
        return "strings"
    if isinstance(default, dict):
        return "mapping"
    return "string"
