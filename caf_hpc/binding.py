"""``runner_for``: a runner class bound to a target and settings, for ``cal.algorithms_runner``."""
from __future__ import annotations

from typing import Any, Optional

from .runner import DaskAlgorithmsRunner
from .settings import resolve


def runner_for(site: Optional[str] = None, **settings: Any) -> type:
    """A ``DaskAlgorithmsRunner`` subclass bound to ``site`` (a name or YAML file) or ``address=``.

    CAF wants a class, not an instance, so the settings live on the class. They are
    checked now, so a mistake shows in the steering script, not hours later.
    """
    overrides = dict(settings, site=site) if site is not None else dict(settings)
    resolved = resolve(**overrides)  # validates names and values now
    label = resolved.description
    return type("DaskAlgorithmsRunner", (DaskAlgorithmsRunner,),
                {"overrides": overrides, "__doc__": f"DaskAlgorithmsRunner bound to {label}.",
                 "__module__": __name__, "__qualname__": f"runner_for({label})"})
