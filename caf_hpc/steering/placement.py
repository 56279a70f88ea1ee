"""Walltime-aware placement: which workers a strategy or collector job may start on, and losses at the walltime.

On a batch site whose ``cluster.walltime`` is set, every worker publishes when its batch
job ends (``caf_hpc.worker.walltime``, registered here on first use). Before a task is
submitted, ``Placement.workers_for`` reads all workers' ends in one call to the scheduler
and decides (``choose``):

* a task whose duration is expected (``expected_duration``: the longest earlier attempt
  of that algorithm in the run records of this calibration's iterations, else the
  ``expected_durations`` hint) starts only on a worker with more than that duration plus
  ``walltime_margin`` left; while none has, a strategy waits for one (a replacement job
  brings a whole walltime), at most ``worker_wait``, and a duration longer than any job's
  walltime is said at once and placed on the worker with the most time left;
* a task of unknown duration goes to the idle worker with the most time left (else the
  busy one with the most); collector jobs, submitted by the hundred, to any worker that
  is not draining;
* a worker with less than ``walltime_margin`` left takes nothing new: it drains itself and
  leaves once idle (``worker.walltime``), and Dask sends nothing to a draining worker.

The choice goes to Dask as the task's worker restriction, loose (``allow_other_workers``):
Dask itself runs the task again elsewhere when its worker is lost, and a strict restriction
naming only workers that are gone by then would leave it waiting for ever.

A worker lost within ``walltime_margin`` (plus ``LOSS_SLACK``) of its job's known end was
lost to the walltime (``walltime_loss``): the runner and the collector backend run the task
again without counting it against ``retries``, and say so.
"""
from __future__ import annotations

import math
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import dask_adapter, interrupt, resources
from ..basf2_compat import log_info, log_warning
from ..worker.walltime import METADATA_KEY, WalltimePlugin
from .progress import RECORD_FILE
from .settings import RunnerSettings

#: A loss this much earlier than the drain (clock differences, the kill's own delay) still counts as the walltime's.
LOSS_SLACK = 5.0
#: How long the workers' ends read from the scheduler are reused (a collector step places hundreds of jobs at once).
VIEW_FOR = 1.0
#: How often a strategy waiting for a worker with enough time left looks again.
WAIT_STEP = 1.0
#: A strategy lost to the walltime this many times is failed: it does not fit in the site's jobs.
WALLTIME_LOSSES = 3


def default_margin(walltime: float) -> float:
    """Seconds kept clear of a job's end unless ``walltime_margin`` says: 5 % of the walltime, 10 s to 5 min."""
    return min(300.0, max(10.0, 0.05 * walltime))


@dataclass(frozen=True)
class Worker:
    """A worker as placement sees it: when its job ends (None: unknown, no limit known) and how busy it is."""

    address: str
    end: float | None
    busy: int = 0

    def left(self, now: float) -> float:
        return math.inf if self.end is None else self.end - now


@dataclass(frozen=True)
class Decision:
    """Where a task may start: ``workers`` (None: anywhere, nothing is known of walltimes; empty: none fits now)."""

    workers: list | None
    why: str


def choose(workers: list, now: float, expected: float | None, margin: float, many: bool = False) -> Decision:
    """Where a task of ``expected`` seconds (None: unknown) may start among ``workers`` (``Worker``), ``margin``
    seconds kept clear of each job's end; ``many``: one of many like it (collector jobs), spread over all."""
    if not any(w.end is not None for w in workers):
        return Decision(None, "no worker's end is known")
    usable = sorted((w for w in workers if w.left(now) > margin), key=lambda w: w.left(now), reverse=True)
    if expected is not None:
        fit = [w.address for w in usable if w.left(now) > expected + margin]
        return Decision(fit, f"{len(fit)} worker(s) with more than {expected:.0f} s expected + {margin:.0f} s left")
    if many:
        return Decision([w.address for w in usable], "duration unknown: any worker not near its end")
    idle = [w for w in usable if not w.busy]
    best = (idle or usable)[:1]
    return Decision([w.address for w in best], "duration unknown: the " + ("idle " if idle else "")
                    + "worker with the most time left")


def durations_in_records(output_dir: Any, algorithm: str) -> list[float]:
    """How long each attempt of ``algorithm`` that ended ran, in the run records of every iteration of this
    calibration (CAF's ``<calibration>/<iteration>/algorithm_output/caf-hpc-run.json``, ``output_dir`` being
    one of them). Lost attempts say nothing of a whole run and are left out; unreadable records too."""
    import json

    here = Path(output_dir)
    paths = {here / RECORD_FILE, *here.parent.parent.glob(f"*/{here.name}/{RECORD_FILE}")}
    found = []
    for path in paths:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for strategy in record.get("strategies", []) if isinstance(record, dict) else []:
            if strategy.get("algorithm") != algorithm:
                continue
            for attempt in strategy.get("attempts", []):
                started, finished = attempt.get("started"), attempt.get("finished")
                if attempt.get("outcome") == "ended" and started and finished and finished >= started:
                    found.append(float(finished - started))
    return found


def expected_duration(settings: RunnerSettings, output_dir: Any, algorithm: str) -> float | None:
    """The longest earlier run of ``algorithm`` in the run records; else the ``expected_durations`` hint; else None."""
    measured = durations_in_records(output_dir, algorithm)
    if measured:
        return max(measured)
    hint = settings.expected_durations.get(algorithm)
    return float(hint) if hint is not None else None


_placements: weakref.WeakKeyDictionary[Any, Placement] = weakref.WeakKeyDictionary()
_placements_lock = threading.Lock()


class Placement:
    """One client's walltime-aware placement: registers the worker plugin, reads the workers' ends, decides."""

    def __init__(self, client: Any, walltime: float, margin: float, scheduler: str) -> None:
        self.client = client
        self.walltime = walltime
        self.margin = margin
        self._lock = threading.Lock()
        self._view: list = []
        self._view_at = -math.inf
        self._ends: dict[str, float] = {}  # every worker's end seen, also of workers gone since
        client.register_plugin(WalltimePlugin(scheduler, walltime, margin))

    @classmethod
    def of(cls, client: Any, settings: RunnerSettings) -> Placement | None:
        """The placement for ``client``; None where there is no walltime to mind (local cluster, an address, a
        site without ``cluster.walltime``)."""
        site = settings.site_config
        if site is None or not site.is_batch:
            return None
        walltime = site.scheduler_type.walltime_seconds(site.cluster.get("walltime")) \
            if site.cluster.get("walltime") is not None else None
        if walltime is None:
            return None
        with _placements_lock:
            placement = _placements.get(client)
            if placement is None:
                margin = settings.walltime_margin or default_margin(walltime)
                if margin >= walltime:
                    log_warning(f"walltime_margin {margin:g} s is not less than the site's walltime {walltime:g} s: "
                                f"every worker would drain at once; keeping {default_margin(walltime):g} s instead")
                    margin = default_margin(walltime)
                placement = _placements[client] = cls(client, walltime, margin, site.scheduler)
            return placement

    def workers(self) -> list:
        """Every worker the scheduler may send tasks to, with its job's end (read at most every ``VIEW_FOR`` s)."""
        with self._lock:
            if time.monotonic() - self._view_at < VIEW_FOR:
                return self._view
            view = dask_adapter.running_workers(self.client, METADATA_KEY)
            self._view = [Worker(address, meta.get("end") if isinstance(meta, dict) else None, busy)
                          for address, (meta, busy) in sorted(view.items())]
            self._ends.update({w.address: w.end for w in self._view if w.end is not None})
            self._view_at = time.monotonic()
            return self._view

    def decide(self, expected: float | None, many: bool = False) -> Decision:
        return choose(self.workers(), time.time(), expected, self.margin, many)

    def fits_any_job(self, expected: float) -> bool:
        """Whether a fresh job's walltime holds ``expected`` seconds and the margin."""
        return expected + self.margin < self.walltime

    def workers_for_strategy(self, label: str, expected: float | None, worker_wait: float) -> list | None:
        """The workers a strategy may start on, waiting (at most ``worker_wait``) while none has time enough.

        Ctrl-C ends the wait (``interrupt.Interrupted``)."""
        decision = self.decide(expected)
        if decision.workers or decision.workers is None:
            return decision.workers
        if expected is not None and not self.fits_any_job(expected):
            log_warning(f"{label} is expected to run {expected:.0f} s, which with the walltime_margin of "
                        f"{self.margin:.0f} s does not fit in the site's walltime of {self.walltime:.0f} s: it starts "
                        "on the worker with the most time left, and may be killed at its job's walltime")
            return choose(self.workers(), time.time(), None, self.margin).workers or None
        log_info(f"{label} waits for a worker with more than {expected or 0:.0f} s (its expected duration) + "
                 f"{self.margin:.0f} s (walltime_margin) left in its batch job; the others drain and are replaced")
        deadline = time.monotonic() + worker_wait
        while time.monotonic() < deadline:
            if interrupt.interrupted():
                raise interrupt.Interrupted()
            time.sleep(WAIT_STEP)
            decision = self.decide(expected)
            if decision.workers or decision.workers is None:
                return decision.workers
        log_warning(f"{label}: no worker with enough time left came within {worker_wait:g} s (worker_wait); "
                    "it starts on the worker with the most time left")
        return choose(self.workers(), time.time(), None, self.margin).workers or None

    def workers_for_collector(self, expected: float | None) -> list | None:
        """The workers a collector job may start on; never waits (CAF's main thread submits them)."""
        decision = self.decide(expected, many=True)
        if decision.workers or decision.workers is None:
            return decision.workers
        return choose(self.workers(), time.time(), None, self.margin, many=True).workers or None

    def walltime_loss(self, worker: str) -> str | None:
        """Why losing ``worker`` now was its batch job's walltime (text for the message), or None if it was not."""
        end = self._ends.get(worker)
        if end is None:
            try:
                meta = self.client.get_metadata([METADATA_KEY, worker], default=None)
            except Exception:  # the scheduler is gone: then it was not the walltime the runner must forgive
                return None
            end = meta.get("end") if isinstance(meta, dict) else None
        if end is None:
            return None
        now = time.time()
        if now < end - self.margin - LOSS_SLACK:
            return None
        when = f"{now - end:.0f} s after" if now >= end else f"{end - now:.0f} s before"
        return f"at its batch job's walltime ({when} the job's end)"


def submit_options(workers: list | None) -> dict:
    """``Client.submit`` keywords for a placement: the workers as a loose restriction (see the module's docstring)."""
    return {} if workers is None else {"workers": workers, "allow_other_workers": True}


def with_resources(client: Any, placed: dict, needs: dict) -> dict:
    """``Client.submit`` keywords for a task both placed (``placed``: workers with time enough, a loose
    restriction) and asking for resources (``needs``: ``resources=`` or ``workers=``, hard restrictions).

    The placement's workers are narrowed to those that give what the task needs. Where none of
    them does, the placement gives way: Dask ignores every restriction of a task whose loose
    worker restriction and resources have no worker in common, resources included, and would
    put it on a worker that never runs it (the worker waits for resources it does not have).
    """
    if "workers" not in placed or not needs:
        return {**placed, **needs}
    if "workers" in needs:
        chosen = [address for address in placed["workers"] if address in set(needs["workers"])]
    else:
        declared = client.scheduler_info(n_workers=-1).get("workers", {})
        chosen = [address for address in placed["workers"]
                  if resources.fits(needs["resources"], (declared.get(address) or {}).get("resources") or {})]
    if not chosen:
        return dict(needs)
    return {**needs, **placed, "workers": chosen}


__all__ = ["WALLTIME_LOSSES", "Decision", "Placement", "Worker", "choose", "collector_placement", "default_margin",
           "durations_in_records", "expected_duration", "strategy_placement", "submit_options", "with_resources"]


def strategy_placement(client: Any, settings: RunnerSettings, label: str, output_dir: Any,
                       algorithm: str) -> tuple:
    """``(the placement or None, Client.submit keywords)`` for one strategy (see ``Placement.workers_for_strategy``)."""
    placement = Placement.of(client, settings)
    if placement is None:
        return None, {}
    expected = expected_duration(settings, output_dir, algorithm)
    return placement, submit_options(placement.workers_for_strategy(label, expected, settings.worker_wait))


def collector_placement(client: Any, settings: RunnerSettings, durations: list) -> dict:
    """``Client.submit`` keywords for a collector job, ``durations`` being how long its step's finished jobs ran."""
    placement = Placement.of(client, settings)
    if placement is None:
        return {}
    return submit_options(placement.workers_for_collector(max(durations) if durations else None))
