"""The memory a strategy may use on its worker, and the watch that ends it past that, with the figures.

A strategy that grows past its batch job's memory is killed by the batch system (or the
kernel's OOM killer), and its worker with it: the runner would see a lost worker, run the
strategy again elsewhere, and lose that one too, and the message would blame the cluster.
Dask's own memory limit watches the worker's process only, not the strategy's, which runs
in a process group of its own. So the worker task watches that group itself: the sum of
the resident memory (RSS) of its processes, every ``INTERVAL`` s, against what the
strategy may use, and ends it before the batch system would, with the figures in its end
(``protocol.Ended.out_of_memory``). The runner reports it as the algorithm's failure; it
is not run again.

What the strategy may use: the memory it asked for (``resources``), or else its worker's
memory limit (``--memory-limit``: dask-jobqueue's ``memory / processes``; the local
cluster's share of the machine) less a margin for the worker's own processes (nanny,
worker, fork server), ``MARGIN_FRACTION`` of the limit and at least ``MARGIN_LEAST``. A
request above that is held to that too: the job cannot give more. A worker without a
memory limit, running a strategy that asked for none, watches nothing.

The figure is RSS summed over the group, as a batch system's accounting shows it (Slurm's
MaxRSS): pages a forked strategy shares with its fork server (a preloaded ROOT) count in
both, so the figure errs on the high side by at most the preload's size.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: How often the strategy's processes are measured (each measure reads the process table once).
INTERVAL = 0.5
#: Of the worker's memory limit, what is kept for the worker's own processes...
MARGIN_FRACTION = 0.05
#: ... and at least this much.
MARGIN_LEAST = 200 * 2**20


def _size(amount: float) -> str:
    from ..resources import size  # a leaf module: no Dask, no runner

    return size(amount)


def worker_limit() -> int | None:
    """This Dask worker's memory limit in bytes; None outside a worker or where it has none."""
    try:
        from distributed import get_worker

        limit = get_worker().memory_manager.memory_limit
    except (ValueError, AttributeError):
        return None
    return int(limit) if limit else None


@dataclass(frozen=True)
class Allowance:
    """What a strategy may use, in bytes, and where that figure comes from (for the message)."""

    limit: int
    source: str


def allowance(asked: int | None, worker: int | None) -> Allowance | None:
    """What a strategy that ``asked`` for memory (or None) may use on a worker with limit ``worker`` (or None)."""
    given = None
    if worker:
        margin = max(MARGIN_LEAST, int(worker * MARGIN_FRACTION))
        given = Allowance(max(0, worker - margin), f"its worker gives it (the worker's memory limit {_size(worker)} "
                                                   f"less {_size(margin)} kept for the worker's own processes)")
    if asked and (given is None or asked <= given.limit):
        return Allowance(int(asked), "it asked for (resources)")
    return given


class MemoryWatch:
    """Measures a strategy's process group every ``INTERVAL`` s; says when it used more than its allowance."""

    def __init__(self, pgid: int, given: Allowance, members: Callable[[int], list]) -> None:
        self.pgid = pgid
        self.given = given
        self.members = members
        self.next = time.monotonic() + INTERVAL
        self.peak = 0

    def used(self) -> int:
        """The resident memory of the group's processes now, summed."""
        total = 0
        for process in self.members(self.pgid):
            try:
                total += process.memory_info().rss
            except Exception:  # ended meanwhile
                continue
        return total

    def check(self, now: float) -> str | None:
        """Past its allowance: what it used and what it may use, as a sentence; else None. Measures only when due."""
        if now < self.next:
            return None
        self.next = now + INTERVAL
        used = self.used()
        self.peak = max(self.peak, used)
        if used <= self.given.limit:
            return None
        return (f"used {_size(used)} of memory (the resident memory of its processes), more than the "
                f"{_size(self.given.limit)} {self.given.source}")


def watch_for(task: Any, pgid: int, members: Callable[[int], list]) -> MemoryWatch | None:
    """The watch for a strategy started as process group ``pgid``; None when nothing limits its memory."""
    given = allowance(getattr(task, "memory_limit", None), worker_limit())
    return MemoryWatch(pgid, given, members) if given is not None else None


def note(log_path: str, text: str) -> None:
    """Says in the algorithm's log why its strategy was ended (the runner's message says it too)."""
    try:
        with open(log_path, "a") as log:
            log.write(f"[caf-hpc] the strategy was ended: it {text}\n")
    except OSError:
        pass
