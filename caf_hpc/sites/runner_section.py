"""The site's ``runner`` section: time limits and retries that a site suggests and a user may override."""
from __future__ import annotations

import os
from dataclasses import fields, replace
from typing import Mapping, Optional

from ..settings import ENVIRONMENT, RunnerSettings
from .config import load_site

#: Settings a site may fill in.
RUNNER_KEYS = ("timeout", "retries", "worker_wait")


def explicit_settings(settings: RunnerSettings, environ: Optional[Mapping[str, str]] = None) -> set:
    """Settings the user chose: given by environment variable, or different from the built-in default.

    ``RunnerSettings`` does not record where a value came from, so an argument equal
    to the built-in default (``retries=1``) cannot be told from no argument at all.
    """
    environ = os.environ if environ is None else environ
    defaults = {f.name: f.default for f in fields(RunnerSettings)}
    chosen = set()
    for name, variable in ENVIRONMENT.items():
        if environ.get(variable, "").strip() or getattr(settings, name) != defaults[name]:
            chosen.add(name)
    return chosen


def apply_runner_section(settings: RunnerSettings) -> RunnerSettings:
    """``settings`` with timeout, retries and worker_wait from the site's ``runner`` section where the user set none."""
    if not settings.site:
        return settings
    site = load_site(settings.site)
    chosen = explicit_settings(settings)
    updates = {key: value for key, value in site.runner.items() if key in RUNNER_KEYS and key not in chosen}
    return replace(settings, **updates) if updates else settings
