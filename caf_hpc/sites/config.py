"""A site config as the rest of caf-hpc sees it: read, merged with overrides, validated, defaults filled in.

``runner_for("site", cluster={...})`` may override the ``cluster``, ``pools``, ``scale``,
``container`` and ``security`` sections: each given key replaces the file's key of the
same name (``scale`` is replaced as a whole, since fixed and adaptive scaling
exclude each other; ``pools`` too, so that the script says every pool it wants). Such a
combination is registered in this process under a name of its own, ``"<site>+<digest>"``, so that
runners with different overrides get different clusters.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..setting_rules import LOCAL_DASHBOARD
from . import lookup, scale_defaults, schedulers, schema
from .errors import SiteConfigError
from .schedulers import Scheduler
from .validate import validate

#: Sections ``runner_for`` may override.
OVERRIDABLE = ("cluster", "pools", "scale", "container", "security", "dask_scheduler")
#: The dashboard stays on this machine unless the site says otherwise.
DEFAULT_DASHBOARD = LOCAL_DASHBOARD  # the local default's, also for a site's scheduler

_bound_lock = threading.Lock()
_bound: dict[str, tuple[str, dict]] = {}


@dataclass
class SiteConfig:
    """A validated site config with caf-hpc's defaults filled in."""

    name: str
    path: Path | None
    source: str
    scheduler: str
    cluster: dict = field(default_factory=dict)
    #: Named pools of batch jobs of other sizes (``caf_hpc.sites.pools``).
    pools: dict = field(default_factory=dict)
    scale: dict = field(default_factory=dict)
    container: dict | None = None
    security: dict = field(default_factory=dict)
    runner: dict = field(default_factory=dict)
    description: str | None = None
    #: Where the Dask scheduler runs (``placement``) and, in a batch job, that job's settings.
    dask_scheduler: dict = field(default_factory=dict)

    @property
    def scheduler_type(self) -> Scheduler:
        """What caf-hpc knows of its scheduler (``schedulers/<scheduler>.py``)."""
        return schedulers.get(self.scheduler)

    @property
    def is_batch(self) -> bool:
        return self.scheduler_type.is_batch

    @property
    def scheduler_in_job(self) -> bool:
        """The Dask scheduler runs in a batch job of its own (``dask_scheduler: {placement: job}``)."""
        return self.dask_scheduler.get("placement") == "job"

    @property
    def tls(self) -> bool:
        return bool(self.security.get("tls"))

    def suggested_settings(self) -> dict:
        """The runner settings this site suggests: its ``runner`` section, and for the local cluster its
        ``cluster`` keys of the same names (``n_workers``, ``dashboard_address``). The user's own win."""
        suggested = dict(self.runner)
        suggested.update({key: self.cluster[key] for key in self.scheduler_type.settings_keys
                          if self.cluster.get(key) is not None})
        return suggested

    def summary(self) -> str:
        """The site, its scheduler, queue and job log directory, for messages about missing workers."""
        parts = [self.scheduler]
        if self.cluster.get("queue"):
            parts.append(f"queue {self.cluster['queue']}")
        if self.cluster.get("log_directory"):
            parts.append(f"job logs in {os.path.expanduser(self.cluster['log_directory'])}")
        elif self.is_batch:
            parts.append("no log_directory set, so job logs are wherever the batch system puts them")
        return f"site {self.name!r} ({', '.join(parts)}; {self.source})"

    def as_dict(self) -> dict:
        """The merged config in the file's own layout (for ``caf-hpc sites show``)."""
        out: dict[str, Any] = {"scheduler": self.scheduler}
        if self.description:
            out["description"] = self.description
        out["cluster"] = copy.deepcopy(self.cluster)
        for section in ("pools", "scale", "container", "security", "runner", "dask_scheduler"):
            value = getattr(self, section)
            if value:
                out[section] = copy.deepcopy(value)
        return out


def read_yaml(path: Path, source: str) -> Any:
    try:
        with open(path, encoding="utf-8") as stream:
            return yaml.safe_load(stream)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise SiteConfigError(f"{source}: {where}not valid YAML: {err.problem}") from None
    except yaml.YAMLError as err:
        raise SiteConfigError(f"{source}: not valid YAML: {err}") from None
    except OSError as err:
        raise SiteConfigError(f"{source}: cannot read: {err.strerror}") from None


def merge_overrides(raw: Any, overrides: Mapping[str, Any]) -> Any:
    """``raw`` with ``overrides``' sections merged in (keys compared as dask-jobqueue spells them)."""
    if not isinstance(raw, dict):
        return raw
    merged = dict(raw)
    for section, given in overrides.items():
        if section not in OVERRIDABLE:
            raise SiteConfigError(f"runner_for: {section}=: not a site section that can be overridden; "
                                  f"allowed: {', '.join(OVERRIDABLE)}")
        if not isinstance(given, Mapping):
            raise SiteConfigError(f"runner_for: {section}=: expected a dict, got {type(given).__name__}")
        base = merged.get(section)
        if section in ("scale", "pools") or not isinstance(base, dict):
            merged[section] = dict(given)
            continue
        replaced = {schema.normalise_key(key) for key in given}
        merged[section] = {k: v for k, v in base.items() if schema.normalise_key(k) not in replaced}
        merged[section].update(given)
    return merged


def scale_with_defaults(scale: dict) -> dict:
    """A batch site's ``scale`` as it runs: ``jobs: N`` as given, else adaptive with every default written out."""
    return dict(scale) if scale_defaults.is_fixed(scale) else scale_defaults.adaptive_settings(scale)


def with_defaults(config: dict, name: str) -> dict:
    """caf-hpc's defaults for what the file leaves out: adaptive scaling, TLS on, the dashboard on 127.0.0.1."""
    config = copy.deepcopy(config)
    if schedulers.get(config["scheduler"]).is_batch:
        config["scale"] = scale_with_defaults(config.get("scale") or {})
        security: dict[str, Any] = {"tls": True, "directory": schema.DEFAULT_TLS_DIRECTORY}
        security.update(config.get("security") or {})
        if isinstance(security.get("directory"), str):
            security["directory"] = security["directory"].replace("{site}", name)
        config["security"] = security
        options = dict(config["cluster"].get("scheduler_options") or {})
        options.setdefault("dashboard_address", DEFAULT_DASHBOARD)
        config["cluster"]["scheduler_options"] = options
        if config.get("dask_scheduler"):
            placement = dict(schema.DASK_SCHEDULER_DEFAULTS, **config["dask_scheduler"])
            placement["directory"] = placement["directory"].replace("{site}", name)
            config["dask_scheduler"] = placement
    return config


def _digest(overrides: Mapping[str, Any]) -> str:
    text = json.dumps(overrides, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def load_site(site: str, overrides: Mapping[str, Any] | None = None) -> SiteConfig:
    """The validated config of ``site`` (a name, a file, or a name registered by ``bind``).

    Reads the file (``read_yaml``) each time: a run calls it once (``steering.settings.resolve_site``) and
    passes the result on, so that its messages and waiting notes read nothing.
    """
    with _bound_lock:
        bound = _bound.get(site)
    if bound is not None:
        site, registered = bound
        overrides = dict(registered, **(overrides or {}))
    path = lookup.find(site)
    name = path.stem if lookup.looks_like_path(site) else site
    source = lookup.display(path)
    raw = read_yaml(path, source)
    if overrides:
        source = f"{source} (with runner_for overrides)"
        raw = merge_overrides(raw, overrides)
    try:
        config = with_defaults(validate(raw, source), name)
    except SiteConfigError as err:
        hidden = [] if lookup.looks_like_path(site) else lookup.shadowed_copies(path)
        if hidden:
            raise SiteConfigError(f"{err}\n(note: {', '.join(map(str, hidden))} has the same name and is not "
                                  f"read, because {source} comes first; give your file a name of its own)") from None
        raise
    return SiteConfig(name=name, path=path, source=source, **config)


def bind(site: str, overrides: Mapping[str, Any] | None = None) -> str:
    """Validates ``site`` with ``overrides`` now; returns the name that finds this combination later."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    load_site(site, overrides)
    if not overrides:
        return site
    key = f"{site}+{_digest(overrides)}"
    with _bound_lock:
        _bound[key] = (site, copy.deepcopy(overrides))
    return key
