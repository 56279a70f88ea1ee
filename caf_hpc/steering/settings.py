"""How a runner reaches its cluster and what limits apply, from arguments and the environment.

Every setting can come from ``runner_for(...)`` or an environment variable, so a
steering script can stay unchanged between a laptop and a batch site:

==========================  =====================  ============================================
setting                     environment variable   meaning
==========================  =====================  ============================================
``address``                 CAF_HPC_ADDRESS        a running Dask scheduler, e.g. tcp://host:8786
``site``                    CAF_HPC_SITE           a site config name or YAML file
``n_workers``               CAF_HPC_WORKERS        local default: strategies at once (default: cores)
``timeout``                 CAF_HPC_TIMEOUT        seconds one strategy may run (default: no limit)
``dashboard_address``       CAF_HPC_DASHBOARD      local default: dashboard (default 127.0.0.1:0)
``retries``                 CAF_HPC_RETRIES        re-runs of a strategy after its worker was lost (1)
``worker_wait``             CAF_HPC_WORKER_WAIT    seconds to wait for a worker to arrive (300)
``fork_server``             CAF_HPC_FORK_SERVER    fork strategies from a server on each worker (1);
                                                   0 starts a fresh interpreter for each instead
``preload``                 CAF_HPC_PRELOAD        modules each worker imports once before its
                                                   strategies, ``module`` or ``module:function``
                                                   to call one as well (comma-separated)
``walltime_margin``         CAF_HPC_WALLTIME_MARGIN batch site with a walltime: seconds a job is
                                                   kept clear of its end (``steering.placement``)
==========================  =====================  ============================================

``factories`` ({algorithm name: "package.module:function"}), ``ship_modules``
(names of modules to send by value), ``resources`` ({algorithm name: {"cores": 8,
"memory": "16GB"}}, also a site's ``runner.resources``; see ``caf_hpc.resources``) and
``expected_durations`` ({algorithm name: seconds}, a strategy's expected duration until the
run records know it; also a site's ``runner`` key) are arguments only.

A site config's ``runner`` section fills in what neither gives (``resolve_site``): the site
is read there, once per run, and travels with the settings (``site_config``) to whatever
needs it later in the run. What settings and site configs share (``SettingsError``, the
preload rule, ...) is in ``setting_rules``, which imports neither.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .. import checks
from .. import resources as resource_rules
from ..setting_rules import LOCAL_DASHBOARD, SettingsError, preload_problems
from ..sites.config import SiteConfig, load_site

__all__ = ["ENVIRONMENT", "RunnerSettings", "SettingsError", "resolve", "resolve_for_run", "resolve_site",
           "scheduler_host_port", "value_problem"]

ENVIRONMENT = {
    "address": "CAF_HPC_ADDRESS",
    "site": "CAF_HPC_SITE",
    "n_workers": "CAF_HPC_WORKERS",
    "timeout": "CAF_HPC_TIMEOUT",
    "dashboard_address": "CAF_HPC_DASHBOARD",
    "retries": "CAF_HPC_RETRIES",
    "worker_wait": "CAF_HPC_WORKER_WAIT",
    "fork_server": "CAF_HPC_FORK_SERVER",
    "preload": "CAF_HPC_PRELOAD",
    "walltime_margin": "CAF_HPC_WALLTIME_MARGIN",
}
_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
_INTEGERS = {"n_workers": 1, "retries": 0}      # setting -> smallest allowed value
_SECONDS = ("timeout", "worker_wait", "walltime_margin")
def scheduler_host_port(address: str) -> tuple:
    """``(host, port)`` of a Dask scheduler address; ValueError unless Dask can connect to it (a known
    protocol, its plugins included, or none; a host; a port)."""
    from distributed.comm import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    scheme, location = parse_address(address)
    host, port = parse_host_port(location)
    get_backend(scheme)
    if scheme == "inproc" or not host or not 0 < port < 65536:
        raise ValueError(f"not a scheduler address: {address!r}")
    return host, port


def _is_scheduler_address(address: str) -> bool:
    try:
        scheduler_host_port(address)
    except ValueError:
        return False
    return True


def value_problem(name: str, value: Any) -> str | None:
    """What is wrong with ``value`` for the number setting ``name`` ("must be ..., got ..."), or None.

    Apart from the error, so that a command line can name its own flag (``--workers``) in front of
    the same words instead of the setting (``n_workers``) the user never typed."""
    if value is None or name not in (*_INTEGERS, *_SECONDS):
        return None
    wanted = checks.whole_number(value, _INTEGERS[name]) if name in _INTEGERS else checks.seconds(value)
    return f"must be {wanted}, got {value!r}" if wanted else None


@dataclass(frozen=True)
class RunnerSettings:
    address: str | None = None
    site: str | None = None
    n_workers: int | None = None
    timeout: float | None = None
    dashboard_address: str = LOCAL_DASHBOARD
    retries: int = 1
    worker_wait: float = 300.0
    fork_server: bool = True
    #: Imported (and called, for ``module:function``) once per worker before its strategies fork.
    preload: tuple = ()
    factories: Mapping[str, Any] = field(default_factory=dict)
    ship_modules: tuple = ()
    #: What an algorithm needs of its worker, {algorithm name: {resource: amount}} (``caf_hpc.resources``).
    resources: Mapping[str, Any] = field(default_factory=dict)
    #: On a batch site with a walltime: seconds kept clear of a job's end (None: ``placement.default_margin``).
    walltime_margin: float | None = None
    #: {algorithm name: seconds}: a strategy's expected duration while no run record has one (``placement``).
    expected_durations: Mapping[str, Any] = field(default_factory=dict)
    #: The settings the user gave (argument or environment), which a site's defaults must not replace.
    explicit: frozenset = field(default=frozenset(), compare=False)
    #: The site's validated config, read once per run by ``resolve_site``; what the run does later (its
    #: cluster, its messages) takes the site from here and never reads the file again.
    site_config: SiteConfig | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.address and not _is_scheduler_address(self.address):
            raise SettingsError(f"address={self.address!r} is not a Dask scheduler address; expected "
                                "[tcp|tls]://HOST:PORT, e.g. tcp://scheduler.example.org:8786 "
                                "(runner_for(address=...) or CAF_HPC_ADDRESS)")
        if self.address and self.site:
            raise SettingsError(f"give either address={self.address!r} or site={self.site!r}, not both")
        for name in (*_INTEGERS, *_SECONDS):
            problem = value_problem(name, getattr(self, name))
            if problem:
                raise SettingsError(f"{name} {problem}")
        if not isinstance(self.fork_server, bool):
            raise SettingsError(f"fork_server must be True or False, got {self.fork_server!r}")
        if not isinstance(self.factories, Mapping):
            raise SettingsError("factories must map algorithm names to 'package.module:function' strings, "
                                f"got {type(self.factories).__name__}")
        needs, problems = resource_rules.requests(self.resources)
        if problems:
            raise SettingsError(f"{'; '.join(problems)} (runner_for(resources=...))")
        object.__setattr__(self, "resources", needs)
        problems = checks.duration_problems(self.expected_durations)
        if problems:
            raise SettingsError(f"expected_durations: {'; '.join(problems)}")
        problems = preload_problems(self.preload)
        if problems:
            raise SettingsError(f"preload: {'; '.join(problems)}")
        object.__setattr__(self, "ship_modules", tuple(self.ship_modules))
        object.__setattr__(self, "preload", tuple(self.preload))

    @property
    def cluster_key(self) -> tuple:
        """Runners whose settings have the same key share one cluster in a process."""
        if self.address:
            return ("address", self.address)
        if self.site:
            return ("site", self.site)
        return ("local", self.n_workers, self.dashboard_address)

    @property
    def description(self) -> str:
        if self.address:
            return f"scheduler {self.address}"
        if self.site:
            return f"site {self.site!r}"
        return "local Dask cluster"


def _from_environment(environ: Mapping[str, str]) -> dict:
    values: dict[str, Any] = {}
    for name, variable in ENVIRONMENT.items():
        raw = environ.get(variable, "").strip()
        if not raw:
            continue
        if name in _INTEGERS:
            if not raw.isdigit() or int(raw) < _INTEGERS[name]:
                raise SettingsError(f"{variable}={raw!r}: expected a whole number, e.g. {_INTEGERS[name] + 1}")
            values[name] = int(raw)
        elif name == "fork_server":
            if raw.lower() not in _BOOLEANS:
                raise SettingsError(f"{variable}={raw!r}: expected 1 or 0 (also true/false, yes/no, on/off)")
            values[name] = _BOOLEANS[raw.lower()]
        elif name == "preload":
            values[name] = tuple(entry.strip() for entry in raw.split(",") if entry.strip())
        elif name in _SECONDS:
            try:
                values[name] = float(raw)
            except ValueError:
                raise SettingsError(f"{variable}={raw!r}: expected seconds as a number, e.g. 3600") from None
        else:
            values[name] = raw
    return values


def resolve(environ: Mapping[str, str] | None = None, **overrides: Any) -> RunnerSettings:
    """Settings from the environment, with explicit arguments taking precedence."""
    known = {f.name for f in fields(RunnerSettings)} - {"explicit", "site_config"}  # internal
    unknown = sorted(set(overrides) - known)
    if unknown:
        guesses = [name + checks.did_you_mean(name, known) for name in unknown]
        raise SettingsError(f"unknown runner setting(s) {', '.join(guesses)}; allowed: {', '.join(sorted(known))}")
    values = _from_environment(os.environ if environ is None else environ)
    if overrides.get("address") or overrides.get("site"):  # an explicit target replaces the environment's
        values.pop("address", None)
        values.pop("site", None)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return RunnerSettings(**values, explicit=frozenset(values))


def resolve_site(settings: RunnerSettings) -> RunnerSettings:
    """``settings`` with the site's config read and attached, and its suggestions filled in where the user set none.

    The one place a run reads its site file. The ``runner`` section suggests timeout, retries,
    worker_wait and preload (validation allows no other keys there); a local site's
    ``cluster`` section suggests n_workers and dashboard_address. What the user chose, by
    argument or environment variable (``settings.explicit``), stays.
    """
    if not settings.site:
        return settings
    site = load_site(settings.site)
    updates = {key: value for key, value in site.suggested_settings().items() if key not in settings.explicit}
    if "resources" in site.runner and "resources" in settings.explicit:  # the script's, algorithm by algorithm
        updates["resources"] = {**site.runner["resources"], **settings.resources}
    return replace(settings, site_config=site, **updates)


def resolve_for_run(overrides: Mapping[str, Any]) -> RunnerSettings:
    """What one ``run()`` uses. One precedence rule: arguments, then the environment, then the site."""
    return resolve_site(resolve(**overrides))
