"""Checking a site config before anything is submitted, with messages that say how to fix it.

Every mistake found is reported at once, one line each, as
``<file>: <section>.<key>: <what is wrong>; <what is allowed>``, in one
``SiteConfigError``. A config that passes comes back normalised: ``jobqueue.yaml``
spellings (``death-timeout``, ``name``) turned into dask-jobqueue's argument names,
``container.env`` as ``NAME=value`` strings.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from dask.utils import parse_bytes

from .. import checks
from ..setting_rules import preload_problems
from . import pools, scale_defaults, schedulers, schema
from .errors import SiteConfigError
from .schedulers import Scheduler

PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*>")

#: Image references Apptainer/Singularity fetch themselves; anything else must be a file here.
IMAGE_URI = re.compile(r"^(docker|docker-archive|oci|oci-archive|library|oras|shub|https?)://")
#: Directories that are never shared between nodes.
NODE_LOCAL = ("/tmp", "/var/tmp", "/dev/shm", "/run")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


def _did_you_mean(key: str, choices: Iterable[str]) -> str:
    guess = checks.closest(key, choices)
    return f"; did you mean {guess!r}?" if guess else "."


def find_placeholder(value: Any) -> str | None:
    """The first ``<PLACEHOLDER>`` a site admin was meant to replace, anywhere in ``value``."""
    if isinstance(value, str):
        match = PLACEHOLDER.search(value)
        return match.group(0) if match else None
    if isinstance(value, dict):
        value = list(value.keys()) + list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            found = find_placeholder(item)
            if found:
                return found
    return None


class _Checker:
    """Collects the problems of one config; each ``kind`` method returns the normalised value."""

    def __init__(self, source: str, scheduler: Scheduler | None = None, unfilled: list | None = None) -> None:
        self.source = source
        self.scheduler = scheduler
        self.errors: list[str] = []
        #: Where placeholders go instead of ``errors`` when given: ``(key, placeholder)`` pairs.
        self.unfilled = unfilled

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{self.source}: {where}: {message}" if where else f"{self.source}: {message}")

    def value(self, where: str, kind: schedulers.core.Kind, value: Any) -> Any:
        placeholder = find_placeholder(value)
        if placeholder and self.unfilled is not None:
            self.unfilled.append((where, placeholder))
            return value
        if placeholder:
            self.error(where, f"placeholder {placeholder!r} not filled in; replace it with the value for your site")
            return value
        if callable(kind):  # a scheduler's own check
            value, problem = kind(value)
            if problem:
                self.error(where, problem)
            return value
        return getattr(self, f"_{kind}")(where, value)

    # -- value kinds -------------------------------------------------------------------------

    def _count(self, where: str, value: Any, smallest: int = 1) -> Any:
        wanted = checks.whole_number(value, smallest)
        if wanted:
            self.error(where, f"expected {wanted}, got {value!r}")
        return value

    def _count0(self, where: str, value: Any) -> Any:
        return self._count(where, value, smallest=0)

    def _seconds(self, where: str, value: Any) -> Any:
        wanted = checks.seconds(value)
        if wanted:
            self.error(where, f"expected {wanted}, got {value!r}")
        return value

    def _seconds0(self, where: str, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            self.error(where, f"expected a number of seconds (0 or more), got {value!r}")
        return value

    def _optional_seconds(self, where: str, value: Any) -> Any:
        return None if value is None else self._seconds(where, value)

    def _bool(self, where: str, value: Any) -> Any:
        if not isinstance(value, bool):
            self.error(where, f"expected true or false, got {value!r}")
        return value

    def _string(self, where: str, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str) or not value.strip():
            self.error(where, f"expected text, got {_type_name(value)}" + (f" {value!r}" if value is not None else ""))
        return value

    def _optional_string(self, where: str, value: Any) -> Any:
        return None if value is None else self._string(where, value)

    def _strings(self, where: str, value: Any) -> Any:
        if isinstance(value, str):
            self.error(where, f"expected a list of strings, got the single string {value!r}; write it as [{value!r}]")
            return value
        if not isinstance(value, list):
            self.error(where, f"expected a list of strings, got {_type_name(value)}")
            return value
        for index, item in enumerate(value):
            if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                self.error(f"{where}[{index}]", f"expected a string, got {_type_name(item)}")
        return [str(item) for item in value]

    def _preload(self, where: str, value: Any) -> Any:
        for problem in preload_problems(value):
            self.error(where, problem)
        return value

    def _placement(self, where: str, value: Any) -> Any:
        if value not in schema.PLACEMENTS:
            self.error(where, f"unknown placement {value!r}{_did_you_mean(str(value), schema.PLACEMENTS)} "
                              f"Allowed: {', '.join(schema.PLACEMENTS)}")
        return value

    def _durations(self, where: str, value: Any) -> Any:
        for problem in checks.duration_problems(value):
            self.error(where, problem)
        return value

    def _mapping(self, where: str, value: Any) -> Any:
        if not isinstance(value, dict):
            self.error(where, f"expected a mapping (key: value), got {_type_name(value)}")
        return value

    def _env(self, where: str, value: Any) -> Any:
        if isinstance(value, dict):
            return [f"{name}={item}" for name, item in value.items()]
        value = self._strings(where, value)
        if isinstance(value, list):
            for index, item in enumerate(value):
                if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", item):
                    self.error(f"{where}[{index}]", f"expected NAME=value, got {item!r}")
        return value

    def _memory(self, where: str, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        try:
            ok = isinstance(value, str) and bool(re.search(r"\d", value)) and parse_bytes(value) > 0
        except (ValueError, TypeError):
            ok = False
        if not ok:
            self.error(where, f"{value!r} is not an amount of memory; write e.g. '4GB' or '3.5GiB'")
        return value

    def _walltime(self, where: str, value: Any) -> Any:
        assert self.scheduler is not None and self.scheduler.walltime is not None  # only its keys get here
        walltime = self.scheduler.walltime
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            self.error(where, f"expected a quoted time such as {walltime.example!r}, got the number {value!r} "
                              "(YAML reads an unquoted time like 12:00:00 as a number of seconds)")
        elif not isinstance(value, str) or not walltime.pattern.match(value.strip()):
            self.error(where, f"{value!r} is not a valid walltime for {self.scheduler.name}; write {walltime.formats}")
        return value


def _check_keys(check: _Checker, section: str, given: dict, allowed: dict) -> dict:
    """Checks one of caf-hpc's own sections against ``allowed`` (key -> kind); returns it normalised."""
    result = {}
    for raw_key, value in given.items():
        key = schema.normalise_key(raw_key)
        where = f"{section}.{raw_key}"
        if key not in allowed:
            check.error(where, f"unknown key{_did_you_mean(key, allowed)} Allowed keys: {', '.join(allowed)}")
            continue
        result[key] = check.value(where, allowed[key], value)
    return result


def _check_cluster(check: _Checker, given: dict) -> dict:
    scheduler = check.scheduler
    assert scheduler is not None
    allowed = scheduler.cluster_keys()
    listing = f"Allowed keys for {scheduler.name}: {', '.join(allowed)}"
    result: dict = {}
    spelled: dict = {}
    for raw_key, value in given.items():
        key = schema.normalise_key(raw_key)
        key = schema.ALIASES.get(key, key)
        where = f"cluster.{raw_key}"
        if key in spelled:
            check.error(where, f"given twice (also as {spelled[key]!r})")
            continue
        spelled[key] = raw_key
        if key in allowed:
            result[key] = check.value(where, scheduler.cluster_kind(key), value)
            if key in schema.UNQUOTED_KEYS and scheduler.is_batch:
                _check_unquoted(check, where, value)
        elif key in schema.MANAGED and scheduler.is_batch:
            check.error(where, schema.MANAGED[key])
        elif key in schema.RENAMED:
            check.error(where, f"renamed by dask-jobqueue; use {schema.RENAMED[key]!r}")
        elif key == "project" and scheduler.project_is_account:
            check.error(where, f"renamed by dask-jobqueue for {scheduler.name}; use 'account'")
        elif schedulers.with_key(key):
            owners = ", ".join(schedulers.with_key(key))
            check.error(where, f"does not apply to {scheduler.name} (it is a key for {owners}). {listing}")
        else:
            check.error(where, f"unknown key{_did_you_mean(key, allowed)} {listing}")
    if scheduler.is_batch:
        for key in scheduler.required_keys:
            if key not in result:
                needed = " and ".join(scheduler.required_keys)
                check.error(f"cluster.{key}", f"missing; dask-jobqueue needs {needed} per job")
        cores, processes = result.get("cores"), result.get("processes")
        if isinstance(cores, int) and isinstance(processes, int) and processes > cores:
            check.error("cluster.processes", f"{processes} worker processes cannot share {cores} core(s); "
                                             "give at most as many processes as cores")
    return result


_UNQUOTED_SAFE = re.compile(schema.UNQUOTED_SAFE)


def _check_unquoted(check: _Checker, where: str, value: Any) -> None:
    """A value dask-jobqueue puts unquoted into a job script must not break it, nor run anything."""
    for index, item in enumerate(value if isinstance(value, list) else [value]):
        text = str(item)
        if not isinstance(item, (str, int, float)) or _UNQUOTED_SAFE.fullmatch(text) or find_placeholder(text):
            continue
        bad = "".join(sorted({c for c in text if not _UNQUOTED_SAFE.fullmatch(c)}))
        spot = f"{where}[{index}]" if isinstance(value, list) else where
        check.error(spot, f"{text!r} has {bad!r}, which the job script would hand to the shell or its batch "
                          "directives unquoted; use letters, digits and _ . / ~ @ % + = : , - only (rename the "
                          "directory or queue, or set it from job_script_prologue, which is your own shell)")


def _check_scale(check: _Checker, scale: dict) -> None:
    """Fixed (``jobs``) or adaptive (``minimum_jobs``, ``maximum_jobs``, ``idle_grace``, defaults in ``allocation``)."""
    adaptive = [key for key in schema.ADAPTIVE_KEYS if key in scale]
    if "jobs" in scale and adaptive:
        check.error("scale", f"jobs (a fixed number of jobs) cannot go with {', '.join(adaptive)} (adaptive "
                             "scaling, the default): give jobs alone, or leave it out for jobs that follow the work")
        return
    if "jobs" in scale:
        if scale["jobs"] == 0:  # no job ever: every strategy would wait worker_wait for nothing
            check.error("scale.jobs", "0 jobs would start no worker, and every strategy would wait for one in vain; "
                                      "give at least 1, or leave jobs out for jobs only while there is work "
                                      "(adaptive: minimum_jobs, maximum_jobs, idle_grace)")
        return
    settings = scale_defaults.adaptive_settings(scale)
    low, high = settings["minimum_jobs"], settings["maximum_jobs"]
    if high == 0:
        check.error("scale.maximum_jobs", "0 would start no worker ever; give at least 1")
    elif isinstance(low, int) and isinstance(high, int) and low > high:
        default = "" if "maximum_jobs" in scale else " (the default; give maximum_jobs too)"
        check.error("scale.minimum_jobs", f"{low} is more than maximum_jobs {high}{default}")


def _check_container(check: _Checker, container: dict) -> None:
    runtime = container.get("runtime")
    if find_placeholder(runtime):
        pass  # already reported
    elif runtime is None:
        check.error("container.runtime", f"missing; allowed: {', '.join(schema.CONTAINER_RUNTIMES)}")
    elif runtime not in schema.CONTAINER_RUNTIMES:
        hint = _did_you_mean(str(runtime), schema.CONTAINER_RUNTIMES)
        check.error("container.runtime", f"unknown runtime {runtime!r}{hint} Allowed: "
                                         f"{', '.join(schema.CONTAINER_RUNTIMES)}")
    image = container.get("image")
    if image is None:
        check.error("container.image", "missing; give the image file (apptainer, singularity) or name (podman)")
    elif (runtime in ("apptainer", "singularity") and isinstance(image, str) and not find_placeholder(image)
          and not IMAGE_URI.match(image)):
        path = os.path.expandvars(os.path.expanduser(image))
        if not os.path.isfile(path):
            check.error("container.image", f"{image} does not exist; {runtime} needs an image file that the "
                                           "workers can read (or a docker://, library:// or oras:// URI)")


def _check_security(check: _Checker, security: dict) -> None:
    if not security.get("tls", True):
        return
    directory = security.get("directory", schema.DEFAULT_TLS_DIRECTORY)
    if not directory or not isinstance(directory, str) or find_placeholder(directory):
        if directory is None or directory == "":
            check.error("security.directory", "TLS is on but no directory is given; give one that the workers "
                                              "can read, on a file system they share (e.g. "
                                              f"{schema.DEFAULT_TLS_DIRECTORY}), or set tls: false")
        return
    if directory.startswith(("~", "$")):
        return
    if not os.path.isabs(directory):
        check.error("security.directory", f"{directory!r} is relative; give an absolute path (or one starting "
                                          "with ~) on a file system the workers share")
        return
    if any(directory == top or directory.startswith(top + "/") for top in NODE_LOCAL):
        check.error("security.directory", f"{directory} is on a node-local file system; workers on other nodes "
                                          "cannot read it: give a directory on a shared file system, e.g. "
                                          f"{schema.DEFAULT_TLS_DIRECTORY}")


def _check_dask_scheduler(check: _Checker, section: dict, cluster: dict) -> None:
    """``dask_scheduler``: its ``job`` keys are ``cluster`` keys of the scheduler's job; with ``placement: job``,
    ``cluster.scheduler_options`` must be something a scheduler in a batch job can be given."""
    scheduler = check.scheduler
    assert scheduler is not None
    job = section.get("job")
    if isinstance(job, dict):
        allowed = [key for key in scheduler.cluster_keys() if key not in schema.SCHEDULER_JOB_NOT_KEYS]
        normalised = {}
        for raw_key, value in job.items():
            key = schema.normalise_key(raw_key)
            key = schema.ALIASES.get(key, key)
            where = f"dask_scheduler.job.{raw_key}"
            if key in schema.SCHEDULER_JOB_NOT_KEYS:
                check.error(where, f"not for the scheduler's job: {schema.SCHEDULER_JOB_NOT_KEYS[key]}")
            elif key in allowed:
                normalised[key] = check.value(where, scheduler.cluster_kind(key), value)
                if key in schema.UNQUOTED_KEYS:
                    _check_unquoted(check, where, value)
            else:
                check.error(where, f"unknown key{_did_you_mean(key, allowed)} The scheduler's job takes the cluster "
                                   f"keys of {scheduler.name} that size and place a job: {', '.join(allowed)}")
        section["job"] = normalised
    directory = section.get("directory")
    if isinstance(directory, str) and not directory.startswith(("~", "$")):
        if not os.path.isabs(directory):
            check.error("dask_scheduler.directory", f"{directory!r} is relative; give an absolute path (or one "
                                                    "starting with ~) on a file system the workers share")
        elif any(directory == top or directory.startswith(top + "/") for top in NODE_LOCAL):
            check.error("dask_scheduler.directory", f"{directory} is on a node-local file system; the scheduler's "
                                                    "job writes its address there for this host to read: give a "
                                                    "directory on a shared file system")
    if section.get("placement") != "job":
        return
    import dask.config

    settings = {key.replace("-", "_") for key in dask.config.get("distributed.scheduler", {})}
    options = cluster.get("scheduler_options")
    for raw_key in options if isinstance(options, dict) else {}:
        key = schema.normalise_key(raw_key)
        if key not in schema.SCHEDULER_JOB_OPTIONS and key not in settings:
            allowed = [*schema.SCHEDULER_JOB_OPTIONS, *sorted(settings)]
            check.error(f"cluster.scheduler_options.{raw_key}",
                        "a scheduler in a batch job (dask_scheduler.placement: job) cannot be given it"
                        f"{_did_you_mean(key, allowed)} "
                        f"It takes {', '.join(schema.SCHEDULER_JOB_OPTIONS)} and Dask's distributed.scheduler "
                        f"settings: {', '.join(sorted(settings))}")


def validate(raw: Any, source: str, unfilled: list | None = None) -> dict:
    """The normalised config, or a ``SiteConfigError`` listing every problem of ``raw``.

    A template's ``<PLACEHOLDER>`` is one of those problems, unless ``unfilled`` is given: then each
    goes into it as ``(key, placeholder)`` and the rest is checked as usual (``caf-hpc sites show``
    prints a template so, marking what to fill in; every use for a run refuses them).
    """
    check = _Checker(source, unfilled=unfilled)
    if not isinstance(raw, dict):
        check.error("", f"expected a mapping of sections ({', '.join(schema.SECTIONS)}), got {_type_name(raw)}")
        raise SiteConfigError("\n".join(check.errors))
    sections: dict = {}
    malformed = False  # a section that is not a mapping: what its keys lack would only be noise
    for raw_key, value in raw.items():
        key = schema.normalise_key(raw_key)
        if key not in schema.SECTIONS:
            check.error(str(raw_key), f"unknown section{_did_you_mean(key, schema.SECTIONS)} "
                                      f"Allowed sections: {', '.join(schema.SECTIONS)}")
        elif key not in ("scheduler", "description") and value is not None and not isinstance(value, dict):
            check.error(str(raw_key), f"expected a mapping of keys to values, got {_type_name(value)}")
            malformed = True
        else:
            sections[key] = value
    name, known = sections.get("scheduler"), schedulers.names()
    if name is None:
        check.error("scheduler", f"missing; allowed: {', '.join(known)}")
    elif name not in known:
        check.error("scheduler", f"unknown scheduler {name!r}{_did_you_mean(str(name), known)} "
                                 f"Allowed: {', '.join(known)}")
    if malformed or name not in known:  # the keys allowed depend on it: nothing more to check
        raise SiteConfigError("\n".join(check.errors))

    scheduler = check.scheduler = schedulers.get(str(name))
    result: dict = {"scheduler": name}
    if sections.get("description") is not None:
        result["description"] = check.value("description", "string", sections["description"])
    for section, why in scheduler.unused_sections.items():
        if sections.get(section):
            check.error(section, why)
    result["cluster"] = _check_cluster(check, sections.get("cluster") or {})
    for section in ("scale", "container", "security", "runner", "dask_scheduler"):
        given = sections.get(section)
        if given is None or section in scheduler.unused_sections:
            continue
        result[section] = _check_keys(check, section, given, schema.SECTION_KEYS[section])
    if sections.get("pools") is not None:
        result["pools"] = pools.validate(check, sections["pools"], _check_unquoted)
    if "scale" in result:
        _check_scale(check, result["scale"])
    if "container" in result:
        _check_container(check, result["container"])
    if scheduler.is_batch:
        _check_security(check, result.get("security", {}))
    if "dask_scheduler" in result:
        _check_dask_scheduler(check, result["dask_scheduler"], result["cluster"])
    if check.errors:
        raise SiteConfigError("\n".join(check.errors))
    return result

