"""The description of one strategy execution: what the child process needs, what the worker needs.

Kept free of Dask imports: the child process unpickles a ``StrategyJob`` and must
start in tens of milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional


@dataclass
class StrategyJob:
    """Everything the child needs to run ``algorithm.strategy(algorithm)`` as CAF would."""

    algorithm: Any
    params: dict
    iov: Any
    iteration: int
    factory: Optional[Callable[[], Any]] = None

    def rebuild_algorithm(self) -> Any:
        """Puts back the algorithm object that could not be pickled, from the user's factory."""
        if self.factory is not None:
            built = self.factory()
            # A factory may return the algorithm object itself or a whole framework.Algorithm.
            self.algorithm.algorithm = getattr(built, "algorithm", built) if hasattr(built, "strategy") else built
        return self.algorithm


@dataclass
class StrategyTask:
    """What the Dask worker needs to supervise one strategy child."""

    algorithm_name: str
    payload: bytes          # a pickled StrategyJob
    queue_name: str
    log_path: str
    output_dir: str
    timeout: Optional[float] = None
    fork_server: bool = True
    preload: tuple = ()     # run once per worker process before the strategy's process starts
