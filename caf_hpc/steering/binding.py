"""``runner_for``: a runner class bound to a target and settings, for ``cal.algorithms_runner``."""
from __future__ import annotations

from typing import Any

from ..sites.config import OVERRIDABLE, bind
from .runner import DaskAlgorithmsRunner
from .settings import SettingsError, resolve


def bound_settings(site: str | None = None, **settings: Any) -> dict:
    """The settings as given, checked now, with ``site`` bound to its overrides of site keys.

    ``cluster={...}``, ``scale={...}``, ``container={...}`` and ``security={...}``
    override keys of the site's sections (``runner_for("slurm", cluster={"memory": "8GB"})``).
    A site config is read and validated here, so that a mistake shows in the steering
    script, not hours later. The runner and the collector backend bind alike, so that
    the same arguments reach the same cluster.
    """
    site_overrides = {key: settings.pop(key) for key in OVERRIDABLE if key in settings}
    overrides = dict(settings, site=site) if site is not None else dict(settings)
    resolved = resolve(**overrides)  # validates names and values now
    if site_overrides and not resolved.site:
        raise SettingsError(f"{'=, '.join(site_overrides)}= override parts of a site config; name a site too")
    if resolved.site:
        bound = bind(resolved.site, site_overrides)  # reads and validates the site config now
        if bound != resolved.site:
            overrides["site"] = bound
    return overrides


def runner_for(site: str | None = None, **settings: Any) -> type[DaskAlgorithmsRunner]:
    """A ``DaskAlgorithmsRunner`` subclass bound to ``site`` (a name or YAML file) or ``address=``.

    CAF wants a class, not an instance, so the settings live on the class; they are
    checked now (``bound_settings``).
    """
    overrides = bound_settings(site, **settings)
    label = resolve(**overrides).description
    return type("DaskAlgorithmsRunner", (DaskAlgorithmsRunner,),
                {"overrides": overrides, "__doc__": f"DaskAlgorithmsRunner bound to {label}.",
                 "__module__": __name__, "__qualname__": f"runner_for({label})"})
