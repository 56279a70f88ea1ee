"""The measures of the suite: each drives caf-hpc's runner and the baselines through the same strategies.

Every function takes the ``Plan`` (how many strategies, results and repetitions) and a
directory of its own, and returns a ``Measure``. They run one after another in one
process, on one machine, so that their ratios compare like with like.
"""
from __future__ import annotations

import compileall
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import cloudpickle
import psutil

from caf_hpc import DaskAlgorithmsRunner, DaskBackend, backend_for, runner_for
from caf_hpc.steering import clusters
from caf_hpc.steering.settings import resolve_for_run

from . import collectors
from .collectors import TRIVIAL, caf_job, phases, sleeping
from .driving import BenchmarkError, calibrate
from .record import CAF_HPC, CAF_LOCAL, REFERENCE, REFERENCE_FAST, Figure, Measure
from .reference import local_backend, reference
from .strategies import (
    Many,
    Paced,
    Realistic,
    Sleeps,
    Trivial,
    UsesRoot,
    algorithms,
    input_files,
    sent_times,
    spans,
    started_times,
)

#: The runner as a steering script uses it by default: the local Dask cluster, one worker per core.
LOCAL = DaskAlgorithmsRunner
PRELOAD = "caf_hpc.extras.demo.cpp_algorithms:declare"
SLURM, SLURM_CONTAINER = "caf-hpc on Slurm", "caf-hpc on Slurm, workers in the container"


@dataclass(frozen=True)
class Plan:
    """How much each measure runs: the full suite by default, a smoke run with ``QUICK``."""

    repeats: int = 5                 # repetitions of caf-hpc's and the 1 ms reference's figures
    strategies: int = 20             # trivial strategies in a row
    reference_strategies: int = 3    # ... for the 5 s reference, which takes 5 s for each
    reference_repeats: int = 3
    results: int = 10_000            # results of the streaming strategy
    reference_results: int = 1_000   # ... for the 5 s reference, whose child blocks on the full pipe
    paced: int = 50                  # results of the latency strategy,
    pace: float = 0.1                # ... sent this far apart (5 s: at least one poll of the reference)
    latency_repeats: int = 3
    sleeps: int = 5                  # strategies of the wall / sum measure,
    sleep_seconds: float = 1.0       # ... working this long each
    cold_repeats: int = 3
    memory_runs: int = 200
    parallel: int = 4                # calibrations in threads, and workers
    parallel_seconds: float = 0.5
    many: tuple = (16, 64)           # calibrations in threads of the "many" measure,
    many_seconds: float = 1.0        # ... 3 strategies of this long each
    many_repeats: int = 2
    root_strategies: int = 10
    with_slow_reference: bool = True
    collector_subjobs: int = 1000          # trivial subjobs of one collector step,
    collector_repeats: int = 5             # ... steps through caf-hpc's backend
    collector_reference_repeats: int = 3   # ... and through CAF's Local, which sees the end at its 30 s update only
    heartbeat: float = 3.0                 # CAF's calibration thread: ready() every 3 s,
    full_update: float = 30.0              # ... update_status() every 30 s
    collector_sleeps: int = 20             # subjobs of the wall / ideal measure,
    collector_sleep_seconds: float = 1.0   # ... working this long each,
    collector_workers: int = 2             # ... on this many workers (and Local's pool processes)


QUICK = replace(Plan(), repeats=1, strategies=3, reference_strategies=1, reference_repeats=1, results=500,
                paced=5, pace=0.02, latency_repeats=1, sleeps=2, sleep_seconds=0.2, cold_repeats=1,
                memory_runs=10, parallel_seconds=0.1, many=(4, 8), many_seconds=0.2, many_repeats=1,
                root_strategies=2, with_slow_reference=False,
                collector_subjobs=20, collector_repeats=1, collector_reference_repeats=1, heartbeat=0.1,
                full_update=1.0, collector_sleeps=4, collector_sleep_seconds=0.2)


def _warm(runner: type, tmp: Path) -> None:
    """The cluster up and its workers' fork servers started, so that a measure run alone (``--only``) sees
    warm workers as in the full suite."""
    calibrate(runner, algorithms(Trivial, 2), tmp / "warm-up")


def _samples(count: int, run: Callable[[int], float]) -> Figure:
    return Figure([run(i) for i in range(count)])


def _per_strategy_ms(runner: type, count: int, repeats: int, tmp: Path, strategy: type = Trivial) -> Figure:
    """Wall time of ``count`` strategies in a row, per strategy, once per repetition."""
    return _samples(repeats, lambda i: calibrate(runner, algorithms(strategy, count), tmp / str(i)).wall / count * 1e3)


def overhead(plan: Plan, tmp: Path) -> Measure:
    measure = Measure("overhead_local", f"overhead per trivial strategy, {plan.strategies} in a row, warm local "
                      "cluster", "ms", target=30,
                      how=f"wall time of run() / strategies; median of {plan.repeats} calibrations. The 5 s "
                      f"reference: {plan.reference_strategies} in a row, {plan.reference_repeats} calibrations",
                      ratios=[(REFERENCE, CAF_HPC), (CAF_HPC, REFERENCE_FAST)])
    _warm(LOCAL, tmp)
    measure.figures[CAF_HPC] = _per_strategy_ms(LOCAL, plan.strategies, plan.repeats, tmp / "caf-hpc")
    measure.figures[REFERENCE_FAST] = _per_strategy_ms(reference(0.001), plan.strategies, plan.repeats, tmp / "fast")
    measure.figures[REFERENCE] = _per_strategy_ms(reference(5.0), plan.reference_strategies, plan.reference_repeats,
                                                  tmp / "reference")
    return measure


#: The realistic strategy with its class importable on the workers, as CAF's own strategies are.
BY_REFERENCE = f"{CAF_HPC}, strategy class imported by the worker"
BY_VALUE = f"{CAF_HPC}, strategy class sent by value"
TRIVIAL_LABEL = f"{CAF_HPC}, trivial strategy"


def _importable(directory: Path):
    """Makes the modules under ``directory`` count as installed for the run's shipping, as a basf2
    user's local release does (``BELLE2_LOCAL_DIR``): classes from them travel by reference."""
    import contextlib
    import os

    @contextlib.contextmanager
    def scope():
        before = os.environ.get("BELLE2_LOCAL_DIR")
        os.environ["BELLE2_LOCAL_DIR"] = str(directory)
        for name, module in list(sys.modules.items()):  # registered by an earlier run; a run registers anew
            if name.split(".")[0] == __package__:
                try:
                    cloudpickle.unregister_pickle_by_value(module)
                except ValueError:
                    pass
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("BELLE2_LOCAL_DIR")
            else:
                os.environ["BELLE2_LOCAL_DIR"] = before
    return scope()


def realistic(plan: Plan, tmp: Path) -> Measure:
    """A strategy that does a little real work, as CAF's do, end to end on a warm local cluster.

    Its classes travel by reference when the workers can import them (as for CAF's own
    strategies: the benchmarks' directory counts as installed, as a local basf2 release does,
    and the local cluster's processes have it on their path) and by value otherwise (code in
    a steering script). The floor is the same work forked bare from the steering process.
    """
    measure = Measure("realistic", f"overhead per realistic strategy (reads 4 input files, logs, prints, writes to "
                      f"fds 1 and 2, commits a payload), {plan.strategies} in a row, warm local cluster", "ms",
                      target=12, judged=BY_REFERENCE,
                      ratios=[(BY_REFERENCE, REFERENCE_FAST), (BY_VALUE, BY_REFERENCE)],
                      how=f"wall time of run() / strategies; median of {plan.repeats} calibrations each, on one warm "
                      "local cluster, in turns. The 1 ms reference forks the steering process for the same work "
                      "(the floor of a fork-per-strategy design); the trivial strategy's figure of the same sitting "
                      "is beside it")
    files = input_files(tmp / "inputs")
    checkout = Path(__file__).resolve().parent.parent
    # An installed release has its modules' bytecode: without it (PYTHONDONTWRITEBYTECODE), each strategy's
    # process would compile the strategies' module again as it imports it (2 ms), which no CAF install does.
    compileall.compile_dir(str(checkout / __package__), quiet=1)
    _warm(LOCAL, tmp)
    calibrate(LOCAL, algorithms(Realistic, 2), tmp / "warm-realistic", input_files=files)
    runs: dict[str, list[float]] = {BY_REFERENCE: [], BY_VALUE: [], REFERENCE_FAST: [], TRIVIAL_LABEL: []}
    for i in range(plan.repeats):  # in turns, so that the machine's load falls on each alike
        count = plan.strategies
        with _importable(checkout):
            ran = calibrate(LOCAL, algorithms(Realistic, count), tmp / f"ref{i}", input_files=files)
        runs[BY_REFERENCE].append(ran.wall / count * 1e3)
        ran = calibrate(LOCAL, algorithms(Realistic, count), tmp / f"value{i}", input_files=files)
        runs[BY_VALUE].append(ran.wall / count * 1e3)
        ran = calibrate(reference(0.001), algorithms(Realistic, count), tmp / f"fast{i}", input_files=files)
        runs[REFERENCE_FAST].append(ran.wall / count * 1e3)
        runs[TRIVIAL_LABEL].append(calibrate(LOCAL, algorithms(Trivial, count), tmp / f"trivial{i}").wall / count * 1e3)
    for label, samples in runs.items():
        measure.figures[label] = Figure(samples)
    return measure


#: The runner with ``CAF_HPC_FORK_SERVER=0``: every strategy a fresh interpreter on the worker.
NO_FORK_SERVER = "caf-hpc, CAF_HPC_FORK_SERVER=0"


def fork_server(plan: Plan, tmp: Path) -> Measure:
    """What the worker's fork server saves a trivial strategy: forked from it, or started as a fresh
    ``python -m caf_hpc.child`` (``CAF_HPC_FORK_SERVER=0``), on the same warm local cluster."""
    measure = Measure("fork_server", f"overhead per trivial strategy, {plan.strategies} in a row, with and without "
                      "the worker's fork server", "ms", judged=CAF_HPC, ratios=[(NO_FORK_SERVER, CAF_HPC)],
                      how=f"wall time of run() / strategies; median of {plan.repeats} calibrations each, on one warm "
                      "local cluster; without the server every strategy's process is a fresh interpreter")
    fresh = runner_for(fork_server=False)
    _warm(LOCAL, tmp)
    measure.figures[CAF_HPC] = _per_strategy_ms(LOCAL, plan.strategies, plan.repeats, tmp / "forked")
    measure.figures[NO_FORK_SERVER] = _per_strategy_ms(fresh, plan.strategies, plan.repeats, tmp / "fresh")
    return measure


def overhead_on(site_runner: type, label: str, plan: Plan, tmp: Path) -> Measure:
    """The trivial strategies' overhead on a batch site's warm workers."""
    measure = Measure("overhead_slurm", f"overhead per trivial strategy, {plan.strategies} in a row, testbed's "
                      "Slurm over TLS", "ms", target=35, judged=label,
                      how=f"as on the local cluster, once the batch job's worker is up; median of {plan.repeats}")
    _warm(site_runner, tmp)
    measure.figures[label] = _per_strategy_ms(site_runner, plan.strategies, plan.repeats, tmp / "runs")
    return measure


def _latencies(runner: type, plan: Plan, repeats: int, tmp: Path) -> list:
    """Per calibration, the ms from each result's ``queue.put`` in the strategy to its append to runner.results."""
    per_run = []
    for i in range(repeats):
        ran = calibrate(runner, algorithms(Paced, 1, params={"count": plan.paced, "every": plan.pace}), tmp / str(i))
        arrived, sent = ran.results["Paced0"].stamps, sent_times(ran.output_dir, "Paced0")
        if len(arrived) != len(sent):
            raise BenchmarkError(f"{len(sent)} results sent, {len(arrived)} arrived")
        per_run.append([(a - s) * 1e3 for s, a in zip(sent, arrived, strict=True)])
    return per_run


def latency(plan: Plan, tmp: Path) -> Measure:
    measure = Measure("latency", "time from a strategy sending a result to it being in runner.results", "ms",
                      target=50, ratios=[(REFERENCE, CAF_HPC), (CAF_HPC, REFERENCE_FAST)],
                      how=f"{plan.paced} results {plan.pace * 1e3:g} ms apart per calibration; the figure of a "
                      f"calibration is its results' median; {plan.latency_repeats} calibrations")
    runners = [(CAF_HPC, LOCAL), (REFERENCE_FAST, reference(0.001))]
    if plan.with_slow_reference:
        runners.append((REFERENCE, reference(5.0)))
    _warm(LOCAL, tmp)
    for label, runner in runners:
        per_run = _latencies(runner, plan, plan.latency_repeats, tmp / label)
        every = [value for run in per_run for value in run]
        measure.figures[label] = Figure([statistics.median(run) for run in per_run],
                                        note=f"p95 {statistics.quantiles(every, n=20)[-1]:.1f} ms, "
                                        f"max {max(every):.1f} ms over {len(every)} results")
        measure.series[label] = every
    return measure


def _rate(runner: type, count: int, local: bool, tmp: Path) -> float:
    """Results per second of run()'s wall time; the results must be all there, in order, once each."""
    ran = calibrate(runner, algorithms(Many, 1, params={"count": count, "local": local}), tmp)
    results = ran.results["Many0"]
    if [result.iov.run_low for result in results] != list(range(count)):
        raise BenchmarkError(f"{count} results sent; {len(results)} arrived, not each once and in order")
    if type(results[0]).__name__ != ("LocalResult" if local else "IoV_Result"):
        raise BenchmarkError(f"results arrived as {type(results[0]).__name__}")
    return count / ran.wall


def throughput(plan: Plan, tmp: Path) -> Measure:
    by_value = f"{CAF_HPC}, a result class sent by value"
    measure = Measure("throughput", f"one strategy sending {plan.results:,} results, all in order, exactly once",
                      "results/s", target=20_000, higher_is_better=True,
                      ratios=[(CAF_HPC, REFERENCE), (CAF_HPC, REFERENCE_FAST)],
                      how=f"results / wall time of run(), checked in order and each once; {plan.repeats} "
                      "calibrations. caf-hpc with CAF's IoV_Result, and with a namedtuple of the steering side's "
                      "own that workers cannot import")
    _warm(LOCAL, tmp)
    measure.figures[CAF_HPC] = _samples(plan.repeats, lambda i: _rate(LOCAL, plan.results, False, tmp / f"c{i}"))
    measure.figures[by_value] = _samples(plan.repeats, lambda i: _rate(LOCAL, plan.results, True, tmp / f"v{i}"))
    measure.figures[REFERENCE_FAST] = _samples(plan.repeats, lambda i: _rate(reference(0.001), plan.results, False,
                                                                            tmp / f"f{i}"))
    if plan.with_slow_reference:
        measure.figures[REFERENCE] = Figure([_rate(reference(5.0), plan.reference_results, False, tmp / "r")],
                                            note=f"{plan.reference_results:,} results, once: its child blocks on "
                                            "the full pipe between polls")
    return measure


def _wall_over_sum(runner: type, plan: Plan, tmp: Path) -> float:
    ran = calibrate(runner, algorithms(Sleeps, plan.sleeps, params={"seconds": plan.sleep_seconds}), tmp)
    return ran.wall / sum(ended - began for _, began, ended in spans(ran.output_dir))


def wall_over_sum(plan: Plan, tmp: Path) -> Measure:
    measure = Measure("wall_over_sum", f"wall time / sum of strategy times, {plan.sleeps} strategies of "
                      f"{plan.sleep_seconds:g} s", "×", target=1.03,
                      how="wall time of run() / the sum of the strategies' own run() durations, as each strategy "
                      f"measured it; {plan.repeats} calibrations (the 5 s reference: 1)")
    _warm(LOCAL, tmp)
    measure.figures[CAF_HPC] = _samples(plan.repeats, lambda i: _wall_over_sum(LOCAL, plan, tmp / f"c{i}"))
    measure.figures[REFERENCE_FAST] = _samples(plan.repeats, lambda i: _wall_over_sum(reference(0.001), plan,
                                                                                      tmp / f"f{i}"))
    if plan.with_slow_reference:
        measure.figures[REFERENCE] = Figure([_wall_over_sum(reference(5.0), plan, tmp / "r")])
    return measure


def cold_start_seconds(runner: type, tmp: Path, close: Callable[[], None]) -> float:
    """From run() with no cluster to the first strategy's run(); the cluster is closed again afterwards."""
    close()
    try:
        ran = calibrate(runner, algorithms(Trivial, 1), tmp)
        return started_times(ran.output_dir)["Trivial0"] - ran.called
    finally:
        close()


def cold_start(plan: Plan, tmp: Path) -> Measure:
    measure = Measure("cold_start", "cold start: first run() to the first strategy running", "s", target=3,
                      judged=SLURM, ratios=[(CAF_HPC, REFERENCE_FAST)],
                      how=f"no cluster before run(); each sample starts one anew ({plan.cold_repeats} samples). "
                      "On Slurm: the batch job submitted, started and its worker connected over TLS")
    measure.figures[CAF_HPC] = _samples(plan.cold_repeats, lambda i: cold_start_seconds(LOCAL, tmp / str(i),
                                                                                        clusters.close_all))
    measure.figures[REFERENCE_FAST] = _samples(plan.cold_repeats, lambda i: cold_start_seconds(
        reference(0.001), tmp / f"f{i}", lambda: None))
    return measure


def memory(plan: Plan, tmp: Path) -> Measure:
    measure = Measure("memory", f"growth of the runner's process over {plan.memory_runs} runs of 3 strategies",
                      "MB", target=20,
                      how="resident memory of this process after the last run minus after the first (psutil), "
                      "one series of runs each")
    process = psutil.Process()
    for label, runner in ((CAF_HPC, LOCAL), (REFERENCE_FAST, reference(0.001))):
        rss = []
        for _ in range(plan.memory_runs):
            calibrate(runner, algorithms(Trivial, 3), tmp / label)
            rss.append(process.memory_info().rss / 1e6)
        measure.figures[label] = Figure([rss[-1] - rss[0]], note=f"{rss[0]:.0f} MB after the first run")
        measure.series[label] = rss
    return measure


def _together(runner: type, plan: Plan, tmp: Path, count: int) -> tuple:
    """Wall time of ``count`` calibrations started at once, each in a thread as CAF runs them, and their
    strategies' spans. (Plain threads, as CAF's: a child forked from a ``ThreadPoolExecutor``'s thread
    fails at exit, joining that executor's threads.)"""
    runs: dict = {}

    def one(i: int) -> None:
        made = algorithms(Sleeps, 3, prefix=f"C{i}Sleeps", params={"seconds": plan.parallel_seconds})
        try:
            runs[i] = calibrate(runner, made, tmp / f"calibration{i}", name=f"calibration{i}")
        except BaseException as err:
            runs[i] = err

    threads = [threading.Thread(target=one, args=(i,), name=f"calibration{i}") for i in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    wall = time.perf_counter() - started
    failed = [run for run in runs.values() if isinstance(run, BaseException)]
    if failed or len(runs) < count:
        raise BenchmarkError(f"{len(failed)} of {count} calibrations failed, {count - len(runs)} hung: {failed}")
    origin = min(run.called for run in runs.values())
    return wall, [(name, began - origin, ended - origin)
                  for run in runs.values() for name, began, ended in spans(run.output_dir)]


def parallel(plan: Plan, tmp: Path) -> Measure:
    count = plan.parallel
    measure = Measure("parallel", f"{count} calibrations in parallel threads, 3 strategies of "
                      f"{plan.parallel_seconds:g} s each, {count} workers", "× one calibration's wall", target=1.3,
                      how=f"wall time of {count} calibrations started at once / wall time of one alone, on one "
                      f"local cluster of {count} workers; {plan.repeats} pairs")
    runner = runner_for(n_workers=count)
    try:
        _together(runner, plan, tmp / "warm-up", count)  # every worker up, with its fork server
        for label, run_with in ((CAF_HPC, runner), (REFERENCE_FAST, reference(0.001))):
            ratios = []
            for i in range(plan.repeats):
                alone, _ = _together(run_with, plan, tmp / label / f"alone{i}", 1)
                together, spans_ = _together(run_with, plan, tmp / label / f"together{i}", count)
                ratios.append(together / alone)
            measure.figures[label] = Figure(ratios)
            measure.series[label] = spans_
    finally:
        clusters.close(runner.settings())
    return measure


def _slots(runner: type) -> int:
    """How many strategies ``runner``'s local cluster runs at once: its workers' threads."""
    settings = runner.settings()  # type: ignore[attr-defined]  # a runner class of runner_for()
    workers = clusters.client_for(settings).scheduler_info(n_workers=-1)["workers"].values()
    return sum(worker["nthreads"] for worker in workers)


MANY_DEFAULT = "{count} calibrations, local default"
MANY_SLOTS = "{count} calibrations, n_workers={count}"


def many(plan: Plan, tmp: Path) -> Measure:
    """Many calibrations in threads on one machine, as CAF starts every calibration whose dependencies are met.

    On the local default (one strategy per core) they queue: the figure is the wall time
    over the ideal queue, one calibration's wall per round of as many calibrations as the
    cluster runs at once (for no more calibrations than cores, one round: wall over one
    calibration alone). With ``n_workers`` as many as the calibrations, the strategies
    (sleeps, which need no core) all run at once as threads of one worker process per core:
    wall over one calibration alone.
    """
    seconds = plan.many_seconds
    largest = MANY_DEFAULT.format(count=max(plan.many))
    plan_here = replace(plan, parallel_seconds=seconds)
    measure = Measure("many", f"{' and '.join(map(str, plan.many))} calibrations in threads, 3 strategies of "
                      f"{seconds:g} s each", "× ideal wall", target=1.2, judged=largest,
                      how=f"wall time of the calibrations started at once / the ideal: one calibration's wall alone "
                      f"(same cluster, same run) times the rounds, ceil(calibrations / strategies at once). Local "
                      f"default: one strategy per core; n_workers=N: N strategies at once, threads of at most one "
                      f"worker process per core. {plan.many_repeats} repetition(s), each with its own 'alone'")
    _warm(LOCAL, tmp)
    slots = _slots(LOCAL)
    for count in plan.many:
        figure, note = [], ""
        for i in range(plan.many_repeats):
            alone, _ = _together(LOCAL, plan_here, tmp / f"default{count}" / f"alone{i}", 1)
            together, spans_ = _together(LOCAL, plan_here, tmp / f"default{count}" / f"many{i}", count)
            rounds = -(-count // slots)
            figure.append(together / (alone * rounds))
            note = f"{slots} at once, {rounds} rounds; wall {together:.1f} s, one alone {alone:.2f} s"
        measure.figures[MANY_DEFAULT.format(count=count)] = Figure(figure, note=note)
        measure.series[MANY_DEFAULT.format(count=count)] = spans_
    for count in plan.many:
        runner = runner_for(n_workers=count)
        try:
            _together(runner, plan_here, tmp / f"slots{count}" / "warm-up", count)  # its fork servers started
            figure = []
            for i in range(plan.many_repeats):
                alone, _ = _together(runner, plan_here, tmp / f"slots{count}" / f"alone{i}", 1)
                together, _ = _together(runner, plan_here, tmp / f"slots{count}" / f"many{i}", count)
                figure.append(together / alone)
                note = f"{_slots(runner)} at once; wall {together:.1f} s, one alone {alone:.2f} s"
            measure.figures[MANY_SLOTS.format(count=count)] = Figure(figure, note=note)
        finally:
            clusters.close(runner.settings())
    return measure


def root_preload(plan: Plan, tmp: Path) -> Measure:
    measure = Measure("root", "a strategy using ROOT (C++ classes declared to cling, one call into C++)",
                      "ms per strategy", judged="caf-hpc, preloaded",
                      ratios=[("caf-hpc, no preload", "caf-hpc, preloaded")],
                      how="a local cluster of one worker, so that every strategy finds it warm; without "
                      "preload every strategy's process starts ROOT's interpreter and declares the classes, with "
                      f"preload=['{PRELOAD}'] the worker's fork server did once. The 1 ms reference forks the "
                      "steering process, which imported ROOT and declared the classes itself")
    from caf_hpc.extras.standins import cpp

    if not cpp.available():
        measure.skipped = "ROOT is not installed (pip install -e '.[root]')"
        return measure
    plain, preloaded = runner_for(n_workers=1), runner_for(n_workers=1, preload=[PRELOAD])
    try:
        _warm(plain, tmp)
        started = time.perf_counter()
        calibrate(preloaded, algorithms(UsesRoot, 1), tmp / "first")
        first = time.perf_counter() - started
        count, repeats = plan.root_strategies, plan.cold_repeats
        measure.figures["caf-hpc, no preload"] = _per_strategy_ms(plain, max(2, count // 4), repeats, tmp / "plain",
                                                                  UsesRoot)
        measure.figures["caf-hpc, preloaded"] = _per_strategy_ms(preloaded, count, repeats, tmp / "preloaded",
                                                                 UsesRoot)
        measure.figures["caf-hpc, preloaded"].note = f"the first, preload included: {first * 1e3:.0f} ms"
        measure.figures["caf-hpc, no ROOT (floor)"] = _per_strategy_ms(plain, count, repeats, tmp / "floor")
        from caf_hpc.extras.demo import cpp_algorithms

        cpp_algorithms.declare()  # as a steering script of C++ algorithms has done before CAF runs
        measure.figures[REFERENCE_FAST] = _per_strategy_ms(reference(0.001), count, repeats, tmp / "fast", UsesRoot)
    finally:
        clusters.close(plain.settings())
    return measure


def batch(plan: Plan, tmp: Path, cold: Measure, container_image: str | None) -> Measure:
    """On the testbed's Slurm: the overhead on warm workers, and cold starts (also in the container).

    ``tmp`` must be under the jobs' working directory, which the container binds. A cold
    start that fails is noted in ``cold`` and the other figures stand.
    """
    slurm = runner_for("localhost-slurm")
    measure = overhead_on(slurm, SLURM, plan, tmp / "overhead")
    clusters.close(slurm.settings())
    cold_starts = [(SLURM, slurm)]
    if container_image:
        in_container = runner_for("localhost-slurm-podman", container={"image": container_image})
        cold_starts.append((SLURM_CONTAINER, in_container))
    for label, runner in cold_starts:
        def cold_start(i: int, runner: type[DaskAlgorithmsRunner] = runner, label: str = label) -> float:
            return cold_start_seconds(runner, tmp / f"{label.split()[-1]}{i}",
                                      lambda: clusters.close(runner.settings()))
        try:
            cold.figures[label] = _samples(plan.cold_repeats, cold_start)
        except Exception as err:  # noted; the other figures stand
            cold.how += f". {label}: not measured, {type(err).__name__}: {err}"
    return measure


# --------------------------------------------------------------------------- CAF's collector step
#: The calibration thread of the backend's own figure: ready() this often, the backend's part of the latency alone.
FAST_HEARTBEAT = 0.01
FAST = f"{CAF_HPC}, ready() every {FAST_HEARTBEAT * 1e3:g} ms"
TO_LAST_END = ", to the last subjob's end"
COLLECTOR_SLURM = "collector step on the testbed's Slurm: submit() to the first subjob running, warm workers"
_trivial_runs: dict = {}


def _caf_timings(plan: Plan) -> str:
    return (f"CAF's calibration thread (ready() every {plan.heartbeat:g} s, update_status() every "
            f"{plan.full_update:g} s) starting at a phase spread evenly over its heartbeat across the repetitions")


def _steps(backend, plan: Plan, tmp: Path, name: str, files: list, command: str, repeats: int,
           heartbeat: float) -> list:
    spread = phases(repeats, heartbeat)
    return [collectors.step(backend, caf_job(tmp, f"{name}{i}", files, command), phase, heartbeat, plan.full_update)
            for i, phase in enumerate(spread)]


def _trivial_steps(plan: Plan, tmp: Path) -> dict:
    """Label -> the steps of ``plan.collector_subjobs`` trivial subjobs through each backend, on the local default
    cluster and a pool of as many processes; run once for the throughput and the latency measures."""
    if plan in _trivial_runs:
        return _trivial_runs[plan]
    from dask.system import CPU_COUNT  # the local default's number of workers

    backend = DaskBackend()
    try:
        with collectors.basf2_release(tmp):
            files = collectors.input_files(tmp / "inputs", plan.collector_subjobs)
            collectors.step(backend, caf_job(tmp, "warm-up", files[:4], TRIVIAL), 0, FAST_HEARTBEAT, plan.full_update)
            runs = {CAF_HPC: _steps(backend, plan, tmp, "caf-hpc", files, TRIVIAL, plan.collector_repeats,
                                    plan.heartbeat),
                    FAST: _steps(backend, plan, tmp, "fast", files, TRIVIAL, plan.collector_repeats, FAST_HEARTBEAT)}
            local = local_backend(CPU_COUNT)
            try:
                runs[CAF_LOCAL] = _steps(local, plan, tmp, "local", files, TRIVIAL, plan.collector_reference_repeats,
                                         plan.heartbeat)
            finally:
                local.join()
    finally:
        backend.close()
    _trivial_runs[plan] = runs
    return runs


def _submit_note(steps: list) -> str:
    return f"submit() returned in {statistics.median(s.returned - s.submitted for s in steps):.2f} s (median)"


def collector_throughput(plan: Plan, tmp: Path) -> Measure:
    count = plan.collector_subjobs
    measure = Measure("collector_throughput", f"collector step: {count:,} trivial subjobs through the backend",
                      "subjobs/s", target=100, higher_is_better=True, ratios=[(CAF_HPC, CAF_LOCAL)],
                      how=f"{count:,} subjobs / the time from submit() to the last subjob's end (the newest of their "
                      "exit-code files), CAF's collector Job (sandbox, b2setup, one subjob per file) with a no-op "
                      "command; caf-hpc on the local default cluster (one worker per core), CAF's Local with as many "
                      f"pool processes. Followed by {_caf_timings(plan)}; {plan.collector_repeats} steps "
                      f"(CAF's Local: {plan.collector_reference_repeats})")
    runs = _trivial_steps(plan, tmp)
    for label in (CAF_HPC, CAF_LOCAL):
        measure.figures[label] = Figure([s.rate for s in runs[label]], note=_submit_note(runs[label]))
    return measure


def collector_latency(plan: Plan, tmp: Path) -> Measure:
    measure = Measure("collector_latency", "collector step: from the last subjob's end to CAF's loop seeing the "
                      "step complete", "s", target=1, ratios=[(CAF_LOCAL, CAF_HPC)],
                      how=f"the {plan.collector_subjobs:,} trivial subjobs' steps of the throughput measure: from "
                      f"the last subjob's end to the moment {_caf_timings(plan)} saw every job ready and completed. "
                      f"{FAST}: the same steps followed by a thread asking every {FAST_HEARTBEAT * 1e3:g} ms, the "
                      "backend's own part (CAF's Local would still wait for its full update). A backend whose "
                      "ready() answers at once is seen at CAF's next heartbeat at the earliest: over evenly spread "
                      "phases, about half a heartbeat on the median")
    runs = _trivial_steps(plan, tmp)
    for label in (CAF_HPC, FAST, CAF_LOCAL):
        measure.figures[label] = Figure([s.latency for s in runs[label]])
    measure.figures[CAF_HPC].note = f"bounded by CAF's {plan.heartbeat:g} s heartbeat"
    measure.figures[CAF_LOCAL].note = f"bounded by CAF's {plan.full_update:g} s full update"
    return measure


def collector_wall(plan: Plan, tmp: Path) -> Measure:
    count, seconds, workers = plan.collector_sleeps, plan.collector_sleep_seconds, plan.collector_workers
    ideal = count * seconds / workers
    measure = Measure("collector_wall", f"collector step: {count} subjobs of {seconds:g} s on {workers} workers, "
                      f"wall / ideal ({ideal:g} s)", "×", target=1.1, ratios=[(CAF_LOCAL, CAF_HPC)],
                      how=f"wall time from submit() until {_caf_timings(plan)} saw the step complete, / {ideal:g} s; "
                      f"'{TO_LAST_END[2:]}': until the last subjob's end instead, without CAF's heartbeat (its "
                      f"part is up to {plan.heartbeat:g} s). caf-hpc on a local cluster of "
                      f"{workers} workers, CAF's Local with {workers} pool processes; {plan.collector_repeats} steps "
                      f"(CAF's Local: {plan.collector_reference_repeats})")
    backend = backend_for(n_workers=workers)
    settings = resolve_for_run(backend.overrides)
    try:
        with collectors.basf2_release(tmp):
            files = collectors.input_files(tmp / "inputs", count)
            collectors.step(backend, caf_job(tmp, "warm-up", files[:workers], TRIVIAL), 0, FAST_HEARTBEAT,
                            plan.full_update)
            runs = {CAF_HPC: _steps(backend, plan, tmp, "caf-hpc", files, sleeping(seconds), plan.collector_repeats,
                                    plan.heartbeat)}
            local = local_backend(workers)
            try:
                runs[CAF_LOCAL] = _steps(local, plan, tmp, "local", files, sleeping(seconds),
                                         plan.collector_reference_repeats, plan.heartbeat)
            finally:
                local.join()
    finally:
        backend.close()
        clusters.close(settings)
    for label in (CAF_HPC, CAF_LOCAL):
        measure.figures[label] = Figure([(s.seen - s.submitted) / ideal for s in runs[label]])
        measure.figures[label + TO_LAST_END] = Figure([(s.last_end - s.submitted) / ideal for s in runs[label]])
    return measure


def collector_slurm(plan: Plan, tmp: Path) -> Measure:
    """On the testbed's Slurm, once its batch job's worker is up: ``submit()`` to the first subjob ``running``."""
    label, script = "caf-hpc on Slurm", "caf-hpc on Slurm, the first script's own start"
    measure = Measure("collector_slurm", COLLECTOR_SLURM, "ms", judged=label,
                      how=f"a collector Job of {plan.collector_workers} subjobs of 1 s, after a first step that "
                      "brought the batch job's worker up; from submit() until a ready() (asked every 1 ms, from "
                      "this thread) showed a subjob running, and until the first subjob's script wrote its start "
                      f"time; {plan.repeats} steps")
    backend = backend_for("localhost-slurm")
    settings = resolve_for_run(backend.overrides)
    seen, started = [], []
    try:
        with collectors.basf2_release(tmp):
            files = collectors.input_files(tmp / "inputs", plan.collector_workers)
            collectors.step(backend, caf_job(tmp, "warm-up", files, TRIVIAL), 0, FAST_HEARTBEAT, plan.full_update)
            for i in range(plan.repeats):
                job = caf_job(tmp, f"first{i}", files, f"date +%s.%N > started; {sleeping(1)}")
                submitted = time.time()
                backend.submit(job)
                seen.append((collectors.first_running(job) - submitted) * 1e3)
                collectors.step(collectors.Submitted(), job, 0, FAST_HEARTBEAT, plan.full_update)
                starts = [float(Path(sj.working_dir, "started").read_text()) for sj in job.subjobs.values()]
                started.append((min(starts) - submitted) * 1e3)
    finally:
        backend.close()
        clusters.close(settings)
    measure.figures[label] = Figure(seen)
    measure.figures[script] = Figure(started)
    return measure
