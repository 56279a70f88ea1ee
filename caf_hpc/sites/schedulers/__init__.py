"""The schedulers a site config may name: one module each, found here, none listed anywhere else.

Each module ``NAME.py`` of this package defines ``SCHEDULER``, a ``core.Scheduler`` whose
``name`` is ``NAME`` (see ``core`` for what it holds). This registry imports every such
module, so adding a scheduler is adding its module (and its golden job script test,
``tests/sites/golden/jobscripts/``); validation, the defaults, building the cluster, the dry
submission, the job-state query and the job id of a worker's messages all ask the registry.

No module here imports Dask or dask-jobqueue when it is imported: a worker's messages read
``job_id_variables`` from here.
"""
from __future__ import annotations

import importlib
import pkgutil

from .core import DryRun, Scheduler

__all__ = ["DryRun", "JOB_ID_VARIABLES", "Scheduler", "all_schedulers", "batch_names", "get", "names", "with_key"]


def _load() -> dict:
    found: dict[str, Scheduler] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name == "core" or module.name.startswith("_"):
            continue
        scheduler = importlib.import_module(f"{__name__}.{module.name}").SCHEDULER
        if scheduler.name != module.name:  # for whoever adds one: the name in site configs is the module's
            raise ImportError(f"{__name__}.{module.name}: SCHEDULER.name is {scheduler.name!r}, not {module.name!r}")
        found[scheduler.name] = scheduler
    return dict(sorted(found.items(), key=lambda item: (item[1].rank, item[0])))


_REGISTRY = _load()

#: Batch-system job ids a worker may run under, for messages: the first one set names its job.
JOB_ID_VARIABLES = tuple(variable for s in _REGISTRY.values() for variable in s.job_id_variables)


def all_schedulers() -> tuple:
    """Every scheduler, in the order messages list them."""
    return tuple(_REGISTRY.values())


def names() -> tuple:
    """What ``scheduler:`` may say, in the order messages list them."""
    return tuple(_REGISTRY)


def batch_names() -> tuple:
    """The schedulers that submit batch jobs."""
    return tuple(name for name, s in _REGISTRY.items() if s.is_batch)


def get(name: str) -> Scheduler:
    """The scheduler of that name; ``KeyError`` if there is none (validation has said so before)."""
    return _REGISTRY[name]


def with_key(key: str) -> list:
    """Names of the schedulers whose ``cluster`` section allows ``key`` (for "does not apply" messages)."""
    return [s.name for s in _REGISTRY.values() if key in s.cluster_keys()]
