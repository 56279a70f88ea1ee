"""Where a site's values enter the runner's settings: the one place, read once per ``run()``."""
from __future__ import annotations

from dataclasses import replace

from ..steering.settings import RunnerSettings
from .config import load_site
from .schema import LOCAL_CLUSTER_KEYS


def apply_site(settings: RunnerSettings) -> RunnerSettings:
    """``settings`` with the site's config attached and its suggestions filled in where the user set none.

    The ``runner`` section suggests timeout, retries, worker_wait and preload (validation
    allows no other keys there); a local site's ``cluster`` section suggests n_workers and
    dashboard_address. What the user
    chose, by argument or environment variable (``settings.explicit``), stays.
    """
    if not settings.site:
        return settings
    site = load_site(settings.site)
    suggested = dict(site.runner)
    if site.scheduler == "local":
        suggested.update({key: site.cluster[key] for key in LOCAL_CLUSTER_KEYS if site.cluster.get(key) is not None})
    updates = {key: value for key, value in suggested.items() if key not in settings.explicit}
    return replace(settings, site_config=site, **updates)
