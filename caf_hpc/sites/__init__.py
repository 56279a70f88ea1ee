"""Site configs: one YAML file per HPC or grid site, turned into a Dask cluster.

``runner_for("site-name")`` finds ``site-name.yaml`` (see ``lookup``) and validates it
(``validate``); each ``run()`` reads it once into the runner's settings
(``runner_section.apply_site``) and, on first use, builds its dask-jobqueue cluster
(``build``), with TLS (``security``) and the worker optionally inside a container
(``container``).
"""
from __future__ import annotations

from .build import build_cluster
from .config import SiteConfig, bind, describe, load_site
from .errors import SiteConfigError
from .runner_section import apply_site

__all__ = ["SiteConfig", "SiteConfigError", "apply_site", "bind", "build_cluster", "describe", "load_site"]
