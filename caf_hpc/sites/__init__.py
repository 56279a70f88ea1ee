"""Site configs: one YAML file per HPC or grid site, turned into a Dask cluster.

``runner_for("site-name")`` finds ``site-name.yaml`` (see ``lookup``), validates it
(``validate``) and, on first use, builds its dask-jobqueue cluster (``build``), with
TLS (``security``) and the worker optionally inside a container (``container``).
Importing this package registers ``build.build_cluster`` with ``caf_hpc.clusters``.
"""
from __future__ import annotations

from .build import build_cluster, register
from .config import SiteConfig, bind, describe, load_site
from .errors import SiteConfigError
from .runner_section import apply_runner_section

__all__ = ["SiteConfig", "SiteConfigError", "apply_runner_section", "bind", "build_cluster", "describe", "load_site"]

register()
