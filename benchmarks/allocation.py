"""What batch jobs a whole calibration holds on the testbed's Slurm: adaptive (the default) against fixed ``jobs: N``.

Two calibrations run in CAF's threads (the stand-ins of CAF, as ``examples/calibration.py``
runs without basf2), each a collector step of many subjobs on ``DaskBackend``, then its
algorithms' strategies one after another on the runner, all on one cluster of the site
``localhost-slurm``. The run is made twice: with the site's adaptive scaling (up to
``jobs`` jobs, a short ``idle_grace``) and with a fixed ``jobs: N``, N the jobs the
collector step uses.

* **held**: core-seconds of the batch jobs, from each job's start and end as Slurm recorded
  them (``sacct -c``, the testbed's job completion log), times its CPUs;
* **work**: the seconds of every collector subjob and strategy attempt, from the run records
  (``caf-hpc-run.json``, one per collector job and per algorithms run);
* **held / work** for each, and the wall time (``CAF.run()``) of adaptive against fixed.

The job count seen by ``squeue`` every half second is kept as the run's series.
"""
from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from caf_hpc import backend_for, runner_for
from caf_hpc.basf2_compat import CAF, Calibration
from caf_hpc.extras.standins import collector, release
from caf_hpc.extras.standins.calibration_algorithm import CalibrationAlgorithm
from caf_hpc.extras.standins.utils import AlgResult
from caf_hpc.steering import clusters
from caf_hpc.steering.progress import RECORD_FILE

from .driving import BenchmarkError
from .strategies import Sleeps

SITE = "localhost-slurm"
COUNT_ENTRIES = "caf_hpc.extras.standins.collector:count_entries"


@dataclass(frozen=True)
class Scenario:
    """The calibrations' sizes: small enough to run in a few minutes on the shared testbed."""

    calibrations: int = 2           # in CAF's threads
    subjobs: int = 12               # collector subjobs per calibration (one input file each)
    subjob_seconds: float = 8.0     # the collector's own work in each
    strategies: int = 2             # algorithms per calibration, run one after another
    strategy_seconds: float = 15.0
    jobs: int = 6                   # maximum_jobs of the adaptive run, jobs of the fixed one
    idle_grace: float = 10.0        # seconds an idle job stays in the adaptive run
    heartbeat: float = 1.0          # CAF's check of the collector jobs (3 s in CAF)


@dataclass
class Run:
    """One whole run as measured."""

    mode: str
    wall: float
    work: float                  # core-seconds of subjobs and strategy attempts
    held: float                  # core-seconds of the batch jobs
    jobs: int                    # batch jobs submitted
    counts: list = field(default_factory=list)   # (seconds since start, jobs running, jobs pending)

    @property
    def ratio(self) -> float:
        return self.held / self.work


class Waits(CalibrationAlgorithm):
    """A CAF algorithm of a name of its own; its strategy (``Sleeps``) does the work."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def calibrate(self) -> AlgResult:
        return AlgResult.ok


class SleepsAndCommits(Sleeps):
    """``Sleeps``, and leaves an (empty) output database where CAF collects the calibration's payloads."""

    def work(self, queue: Any) -> None:
        Path(self.output_database_dir).mkdir(parents=True, exist_ok=True)
        Path(self.output_database_dir, "database.txt").touch()
        super().work(queue)


def scale_for(mode: str, scenario: Scenario) -> dict:
    if mode == "fixed":
        return {"jobs": scenario.jobs}
    return {"minimum_jobs": 0, "maximum_jobs": scenario.jobs, "idle_grace": scenario.idle_grace}


def squeue_counts(job_name: str) -> tuple:
    """``(running, pending)`` jobs called ``job_name`` in Slurm's queue now."""
    out = subprocess.run(["squeue", "-h", "-n", job_name, "-o", "%T"], capture_output=True, text=True, timeout=30)
    states = out.stdout.split()
    return states.count("RUNNING"), states.count("PENDING") + states.count("CONFIGURING")


class JobCounter:
    """Samples ``squeue`` for one job name every ``every`` s in a thread of its own, until stopped."""

    def __init__(self, job_name: str, every: float = 0.5) -> None:
        self.job_name, self.every = job_name, every
        self.samples: list = []
        self.started = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True, name=f"squeue {job_name}")

    def __enter__(self) -> JobCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=35)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                running, pending = squeue_counts(self.job_name)
                self.samples.append((time.time() - self.started, running, pending))
            except (OSError, subprocess.SubprocessError):
                pass
            self._stop.wait(self.every)

    def latest(self) -> tuple:
        return self.samples[-1][1:] if self.samples else (0, 0)


def calibrations(root: Path, scenario: Scenario, site_settings: dict, tag: str) -> list:
    """The calibrations of one run: each a collector over its own files and ``strategies`` sleeping strategies."""
    made = []
    for c in range(scenario.calibrations):
        inputs = root / f"inputs{c}"
        inputs.mkdir(parents=True, exist_ok=True)
        files = []
        for i in range(scenario.subjobs):
            path = inputs / f"raw{i}.txt"
            path.write_text("hit\n" * (i + 1))
            files.append(str(path))
        module = collector.register_module(COUNT_ENTRIES, sleep=scenario.subjob_seconds)
        algorithms = [Waits(f"{tag}Cal{c}Step{s}") for s in range(scenario.strategies)]
        calibration = Calibration(f"{tag}Cal{c}", collector=module, algorithms=algorithms, input_files=files)
        for algorithm in calibration.algorithms:
            algorithm.strategy = SleepsAndCommits
            algorithm.params = {"seconds": scenario.strategy_seconds}
        calibration.output_patterns = [collector.OUTPUT_FILE]
        calibration.max_files_per_collector_job = 1
        calibration.heartbeat = scenario.heartbeat
        calibration.algorithms_runner = runner_for(SITE, **site_settings)
        made.append(calibration)
    return made


def work_seconds(directory: Path) -> float:
    """Seconds of every attempt (collector subjob or strategy) in the run records under ``directory``."""
    total = 0.0
    for path in directory.rglob(RECORD_FILE):
        record = json.loads(path.read_text())
        for entry in record.get("strategies", []):
            for attempt in entry.get("attempts", []):
                if attempt.get("started") is not None and attempt.get("finished") is not None:
                    total += attempt["finished"] - attempt["started"]
    return total


def _epoch(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:  # "Unknown", "None": never started
        return None


def held_seconds(job_name: str, since: float, wait: float = 60) -> tuple:
    """``(core-seconds, jobs)`` of the jobs called ``job_name`` from Slurm's job completion records (``sacct -c``).

    Waits (at most ``wait`` s) until none of them is still in the queue, so that every one has its end recorded.
    """
    deadline = time.monotonic() + wait
    while sum(squeue_counts(job_name)) and time.monotonic() < deadline:
        time.sleep(0.5)
    start = datetime.fromtimestamp(since - 60).strftime("%Y-%m-%dT%H:%M:%S")
    out = subprocess.run(["sacct", "-c", "-X", "-n", "-P", "-S", start, "-o", "JobID,JobName,Start,End,NCPUS"],
                         capture_output=True, text=True, timeout=60, check=True)
    held, jobs = 0.0, set()
    for line in out.stdout.splitlines():
        parts = line.split("|")
        if len(parts) < 5 or parts[1] != job_name:
            continue
        jobs.add(parts[0])
        began, ended = _epoch(parts[2]), _epoch(parts[3])
        if began is not None and ended is not None:
            held += max(0.0, ended - began) * int(parts[4] or 1)
    return held, len(jobs)


def run(mode: str, root: Path, scenario: Scenario, after: Callable[[JobCounter], None] | None = None) -> Run:
    """One whole run (``mode`` "adaptive" or "fixed") of the scenario on the testbed's Slurm; needs its environment.

    ``after(counter)``, if given, is called once CAF's run ended, before the cluster is closed (a test that
    watches the jobs go).
    """
    tag = f"{mode[:1].upper()}{uuid.uuid4().hex[:6]}"
    job_name = f"caf-alloc-{tag.lower()}"
    site_settings = {"cluster": {"job_name": job_name}, "scale": scale_for(mode, scenario)}
    root.mkdir(parents=True, exist_ok=True)
    with release.set_up(release.make_tools(root / "basf2-tools")):
        caf = CAF()
        caf.backend = backend_for(SITE, **site_settings)
        for calibration in calibrations(root, scenario, site_settings, tag):
            caf.add_calibration(calibration)
        caf.output_dir = str(root / "calibration_results")
        began = time.time()
        try:
            with JobCounter(job_name) as counter:
                caf.run()
                wall = time.time() - began
                failed = [c.name for c in caf.calibrations.values() if c.state != "completed"]
                if after is not None:
                    after(counter)
        finally:
            caf.backend.close()
            clusters.close_all()
    if failed:
        raise BenchmarkError(f"{mode}: calibration(s) {', '.join(failed)} did not complete; see {root}")
    held, jobs = held_seconds(job_name, began)
    return Run(mode, wall, work_seconds(root / "calibration_results"), held, jobs, counter.samples)


# --------------------------------------------------------------------------- the suite's measures
ADAPTIVE = "caf-hpc on Slurm, adaptive (the default)"
FIXED = "caf-hpc on Slurm, fixed jobs: N"
HELD_TITLE = "batch jobs' core-hours held / core-hours of work, a whole calibration on the testbed's Slurm"
WALL_TITLE = "wall time of that calibration, adaptive / fixed jobs: N"


def measures(tmp: Path, scenario: Scenario | None = None, repeats: int = 1) -> list:
    """The two rows of the suite: held / work for adaptive and fixed, and adaptive's wall time against fixed.

    Needs the testbed's Slurm environment (``benchmarks.batch.testbeds``). The fixed and adaptive runs
    alternate, so that a change of the shared machine's load falls on both.
    """
    from .record import Figure, Measure

    scenario = scenario or Scenario()
    runs: dict = {"fixed": [], "adaptive": []}
    for i in range(repeats):
        for mode in ("fixed", "adaptive"):
            runs[mode].append(run(mode, tmp / f"{mode}{i}", scenario))
    how = (f"{scenario.calibrations} calibrations in CAF's threads (CAF's stand-ins), each {scenario.subjobs} "
           f"collector subjobs of {scenario.subjob_seconds:g} s of work, then {scenario.strategies} strategies of "
           f"{scenario.strategy_seconds:g} s one after another; adaptive: minimum_jobs 0, maximum_jobs "
           f"{scenario.jobs}, idle_grace {scenario.idle_grace:g} s; fixed: jobs {scenario.jobs}; 1-core jobs. Held: "
           "each batch job's start to end in Slurm's job completion records (sacct -c); work: every subjob's and "
           f"strategy attempt's start to end in the run records; {repeats} run(s) each, from CAF.run() to its end")
    held = Measure("allocation", HELD_TITLE, "×", target=1.3, judged=ADAPTIVE, how=how)
    wall = Measure("allocation_wall", WALL_TITLE, "×", target=1.1, judged=ADAPTIVE, how=how)
    for mode, label in (("adaptive", ADAPTIVE), ("fixed", FIXED)):
        done = runs[mode]
        held.figures[label] = Figure([r.ratio for r in done],
                                     note=f"held {sum(r.held for r in done) / len(done):.0f} core-s for "
                                          f"{sum(r.work for r in done) / len(done):.0f} core-s of work, "
                                          f"{sum(r.jobs for r in done) / len(done):.1f} jobs")
        held.series[label] = [r.counts for r in done]
    wall.figures[ADAPTIVE] = Figure([a.wall / f.wall for a, f in zip(runs["adaptive"], runs["fixed"], strict=True)],
                                    note="adaptive " + ", ".join(f"{r.wall:.0f} s" for r in runs["adaptive"])
                                    + "; fixed " + ", ".join(f"{r.wall:.0f} s" for r in runs["fixed"]))
    return [held, wall]
