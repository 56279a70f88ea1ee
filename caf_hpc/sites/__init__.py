"""Site configs: one YAML file per HPC or grid site, turned into a Dask cluster.

``runner_for("site-name")`` finds ``site-name.yaml`` (see ``lookup``) and validates it
(``validate``, ``load_site``); each ``run()`` reads it once (``steering.settings.resolve_site``)
and passes the loaded ``SiteConfig`` on. On first use its dask-jobqueue cluster is built
(``build``), with TLS (``security``) and the worker optionally inside a container
(``container``). What differs between schedulers is in one module each (``schedulers``).

Names are imported lazily: a worker's messages read the job id variables from
``schedulers`` without importing what builds clusters.
"""
from __future__ import annotations

from typing import Any

__all__ = ["SiteConfig", "SiteConfigError", "bind", "build_cluster", "load_site"]

_LAZY = {
    "SiteConfig": "caf_hpc.sites.config",
    "bind": "caf_hpc.sites.config",
    "load_site": "caf_hpc.sites.config",
    "SiteConfigError": "caf_hpc.sites.errors",
    "build_cluster": "caf_hpc.sites.build",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'caf_hpc.sites' has no attribute {name!r}")
