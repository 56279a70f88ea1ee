"""The site's ``runner`` section: time limits and retries that a site suggests and a user may override."""
from __future__ import annotations

from dataclasses import replace

from ..settings import RunnerSettings
from .config import load_site
from .schema import RUNNER_KEYS


def explicit_settings(settings: RunnerSettings) -> set:
    """Settings the user chose, by argument or environment variable: the site must not replace them."""
    return set(settings.explicit)


def apply_runner_section(settings: RunnerSettings) -> RunnerSettings:
    """``settings`` with timeout, retries and worker_wait from the site's ``runner`` section where the user set none."""
    if not settings.site:
        return settings
    site = load_site(settings.site)
    chosen = explicit_settings(settings)
    updates = {key: value for key, value in site.runner.items() if key in RUNNER_KEYS and key not in chosen}
    return replace(settings, **updates) if updates else settings
