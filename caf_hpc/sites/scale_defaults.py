"""What a batch site's ``scale`` section means where it says nothing: the defaults of adaptive scaling.

A module of its own, importing nothing, so that the site checks (``sites``) and the scaling
itself (``allocation``, which imports Dask's adaptive machinery and is imported by the
cluster's builder) read the same values without importing each other.
"""
from __future__ import annotations

#: What a batch site's ``scale`` section means when it does not say: adaptive, no job when nothing waits,
#: at most this many jobs at once, and an idle job leaves after ``idle_grace`` seconds.
DEFAULT_MINIMUM_JOBS = 0
DEFAULT_MAXIMUM_JOBS = 10
DEFAULT_IDLE_GRACE = 60.0


def is_fixed(scale: dict) -> bool:
    """Whether a validated ``scale`` section asks for a fixed number of jobs (``jobs: N``)."""
    return "jobs" in scale


def adaptive_settings(scale: dict) -> dict:
    """``minimum_jobs``, ``maximum_jobs`` and ``idle_grace`` of an adaptive ``scale`` section, defaults filled in."""
    return {"minimum_jobs": scale.get("minimum_jobs", DEFAULT_MINIMUM_JOBS),
            "maximum_jobs": scale.get("maximum_jobs", DEFAULT_MAXIMUM_JOBS),
            "idle_grace": scale.get("idle_grace", DEFAULT_IDLE_GRACE)}
