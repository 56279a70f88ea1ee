"""The demo calibration end to end, as CAF runs one: raw hit files per run, collector jobs on the cluster
turning them into collector output, then the three algorithms through the runner; and what came out.

It goes through the stand-in of CAF's framework (``standins.caf.CAF``, ``Calibration``), with
the collector jobs on ``DaskBackend`` and the algorithms on the runner, both on one cluster,
and a stand-in basf2 release (``b2setup``, ``basf2``) for the collector jobs to set up.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from ..standins import collection, cpp, release
from ..standins.caf import CAF
from ..standins.collection import CollectorOutcome
from ..standins.collector import register_module
from ..standins.driver import IterationOutcome
from ..standins.framework import Calibration
from ..standins.utils import AlgResult, IoV
from . import algorithms as python_algorithms
from .algorithms import ALGORITHM_NAMES, check_against_truth
from .collector import COLLECTOR, OUTPUT_PATTERNS
from .simulate import TRUTH_FILENAME, simulate

CALIBRATION_NAME = "demo"
#: The demo's two sets of algorithms: C++ through ROOT, or pure Python.
FLAVOURS = ("cpp", "python")
#: Runs (raw hit files) per collector job: 4 jobs for the demo's 40 runs, two per worker on 2 cores.
RUNS_PER_COLLECTOR_JOB = 10
#: CAF's own heartbeats, made shorter as a steering script may (``caf.heartbeat``, ``cal.heartbeat``: 5 s and 3 s).
#: CAF's hard-coded 5 s wait for its collector jobs to be submitted stays.
HEARTBEAT = 1.0


def choose_flavour(requested: str = "auto") -> str:
    """``cpp`` when ROOT can be imported (or asked for), else ``python``."""
    if requested == "auto":
        return "cpp" if cpp.available() else "python"
    if requested not in FLAVOURS:
        raise ValueError(f"flavour {requested!r}: allowed are auto, {', '.join(FLAVOURS)}")
    if requested == "cpp" and not cpp.available():
        raise ValueError("the C++ flavour needs ROOT, which is not installed here: pip install 'caf-hpc[root]'")
    return requested


def flavour_settings(flavour: str) -> dict:
    """Runner settings the flavour needs: the C++ classes declared on every worker, once."""
    if flavour == "cpp":
        from .cpp_algorithms import PRELOAD

        return {"preload": [PRELOAD]}
    return {}


def describe_flavour(flavour: str) -> str:
    if flavour == "cpp":
        ROOT = cpp.import_root()
        return (f"C++ algorithms compiled by ROOT {ROOT.gROOT.GetVersion()}'s cling, collector output in ROOT files, "
                "payloads as ROOT files")
    hint = "" if cpp.available() else " (install the root extra for the C++ ones: pip install 'caf-hpc[root]')"
    return f"Python algorithms, collector output in JSON files{hint}"


@dataclass
class DemoReport:
    outcome: IterationOutcome         # the algorithm step of the last iteration
    input_files: list                 # the raw hit files, one per run
    truth_file: Path
    wall_time: float                  # the whole calibration, CAF.run() from start to end
    residuals: dict
    flavour: str = "python"
    page: Path | None = None          # the HTML report (caf-hpc report)
    state: str = "completed"          # the calibration's final state in CAF
    collector: CollectorOutcome | None = None
    collector_jobs: list = field(default_factory=list)   # the last iteration's collector Jobs
    timings: dict = field(default_factory=dict)           # step -> (start, end), time.time()

    @property
    def succeeded(self) -> bool:
        return self.state == "completed" and not self.outcome.failed

    @property
    def database_dir(self) -> Path:
        return self.outcome.output_dir / "outputdb"

    def log_file(self, algorithm: str) -> Path:
        return self.outcome.output_dir / f"{algorithm}_stdout"

    def step_time(self, step: str) -> float | None:
        start, end = self.timings.get(step, (None, None))
        return None if start is None or end is None else end - start


def collector_progress(calibration: Calibration) -> tuple | None:
    """(completed, failed, running, total) collector (sub)jobs of the calibration's current iteration, or None
    before any."""
    machine = calibration.machine
    jobs = list(machine.collector_jobs.values()) if machine is not None else []
    if not jobs or any(job._status == "init" and not job.subjobs for job in jobs):
        return None  # not submitted yet: its subjobs are made when it is
    return collection.progress(jobs)


def run_demo(runner_class: type, output_dir: Path, *, backend: Any = None, seed: int = 2024,
             experiments: Sequence[int] = (1, 2), runs: int = 20, fail: str | None = None,
             flavour: str = "python", runs_per_collector_job: int = RUNS_PER_COLLECTOR_JOB,
             watch: Callable[[Calibration], None] | None = None) -> DemoReport:
    """Simulates raw hit files, runs the calibration through CAF, checks the payloads against the truth.

    The collector jobs run on ``backend``, by default a ``DaskBackend`` on the runner's own
    cluster (its settings). For the ``cpp`` flavour the runner must declare the C++ classes
    on its workers (``flavour_settings``): the algorithm objects travel to them by value.
    ``watch(calibration)`` is called before CAF runs it (the live display follows it).
    """
    chosen: ModuleType = python_algorithms
    if flavour == "cpp":
        from . import cpp_algorithms as chosen
    wrapped = chosen.make_algorithms(fail=fail)
    output_dir = Path(output_dir).resolve()
    raw_dir = output_dir / "raw"
    # CAF's output_dir is the demo's: a batch site's containers bind the directory CAF works in, and the
    # collector jobs need the raw files and the release beside it (calibration/, collector/: earlier layouts)
    for name in ("raw", CALIBRATION_NAME, "basf2-tools", "calibration", "collector"):
        if (output_dir / name).exists():
            shutil.rmtree(output_dir / name)
    files = simulate(raw_dir, seed=seed, experiments=experiments, runs_per_experiment=runs, output_format="raw")
    output_format = "root" if flavour == "cpp" else "json"
    if backend is None:
        from ...steering.backend import DaskBackend

        backend = DaskBackend(settings=getattr(runner_class, "overrides", {}))
    with release.set_up(release.make_tools(output_dir / "basf2-tools")):
        calibration = Calibration(CALIBRATION_NAME, collector=register_module(COLLECTOR, output_format=output_format),
                                  algorithms=[a.algorithm for a in wrapped], input_files=[str(f) for f in files],
                                  output_patterns=OUTPUT_PATTERNS[output_format],
                                  max_files_per_collector_job=runs_per_collector_job)
        for algorithm, chosen_one in zip(calibration.algorithms, wrapped, strict=True):
            algorithm.strategy = chosen_one.strategy
        calibration.algorithms_runner = runner_class
        calibration.backend = backend
        calibration.heartbeat = HEARTBEAT
        caf = CAF()
        caf.backend = backend  # else CAF installs its Local backend, whose process pool is then never used
        caf.add_calibration(calibration)
        caf.output_dir = output_dir
        caf.heartbeat = HEARTBEAT
        if watch is not None:
            watch(calibration)
        started = time.monotonic()
        caf.run()
        wall = time.monotonic() - started
    return _report(calibration, files, raw_dir / TRUTH_FILENAME, wall, flavour, output_dir)


def _report(calibration: Calibration, files: list, truth_file: Path, wall: float, flavour: str,
            output_dir: Path) -> DemoReport:
    machine = calibration.machine
    iteration = machine.iteration if machine is not None else 0
    outcome = machine.outcomes[-1] if machine is not None and machine.outcomes else IterationOutcome(
        iteration, {}, None, RuntimeError(f"the collector step {calibration.state}: no algorithm ran"),
        output_dir / calibration.name / str(iteration) / "algorithm_output")
    residuals = check_against_truth(outcome.output_dir / "outputdb", truth_file)
    report = DemoReport(outcome, files, truth_file, wall, residuals, flavour, state=calibration.state)
    if machine is not None:
        report.collector = machine.collector_outcomes.get(iteration)
        report.collector_jobs = list(machine.collector_jobs.values())
        report.timings = machine.timings.get(iteration, {})
    report.page = write_report_page(output_dir, truth_file)
    return report


#: The demo's payload columns and the simulation's names for their true values.
_TRUTH_COLUMNS = {"Pedestals": "pedestal", "Gains": "gain", "TimeOffsets": "t0"}


def write_report_page(output_dir: Path, truth_file: Path) -> Path | None:
    """``caf-hpc report``'s page for the demo's directory, the constants drawn as their difference from the
    simulated truth; None where Bokeh is not installed (the worker image leaves it out) or the run left no record."""
    from ...report import TRUTH_FILE, ReportError, load_records
    from ...report.html import write_page

    if _without_bokeh():
        return None
    truth = json.loads(truth_file.read_text())
    truth = {payload: {column: truth[payload]} for payload, column in _TRUTH_COLUMNS.items() if payload in truth}
    (output_dir / TRUTH_FILE).write_text(json.dumps(truth))  # what `caf-hpc report` subtracts from the constants
    try:
        records = load_records(output_dir)
    except ReportError:
        return None  # the run did not get as far as writing a record
    return write_page(records, output_dir / "report.html", truth)


def _without_bokeh() -> bool:
    return importlib.util.find_spec("bokeh") is None


def _code(code: int) -> str:
    try:
        return f"{code} {AlgResult(code).name}"
    except ValueError:
        return str(code)


def _iov(iov: IoV) -> str:
    return f"({iov.exp_low},{iov.run_low}) - ({iov.exp_high},{iov.run_high})"


def result_rows(results: list) -> list[tuple[str, str]]:
    """(IoV, result) rows; consecutive single-run IoVs with the same code are folded into one."""
    rows: list[tuple[IoV, int, int, int, int]] = []  # the first IoV, code, runs folded (0: not one run), exp, last run
    for result in results:
        iov, code = result.iov, result.result
        single_run = iov.exp_low == iov.exp_high and iov.run_low == iov.run_high
        if rows and single_run and rows[-1][1] == code and rows[-1][2] and rows[-1][3] == iov.exp_low \
                and rows[-1][4] + 1 == iov.run_low:
            first, _, count, exp, _ = rows[-1]
            rows[-1] = (first, code, count + 1, exp, iov.run_low)
        else:
            rows.append((iov, code, 1 if single_run else 0, iov.exp_low, iov.run_low))
    table = []
    for iov, code, count, exp, last_run in rows:
        if count > 1:
            table.append((f"({exp},{iov.run_low}) - ({exp},{last_run})  {count} runs, one IoV each", _code(code)))
        else:
            table.append((_iov(iov), _code(code)))
    return table


_UNITS = {"Pedestals": "ADC", "Gains": "ADC/keV", "TimeOffsets": "ns"}


def _collector_lines(report: DemoReport) -> list[str]:
    units = [u for job in report.collector_jobs for u in (list(job.subjobs.values()) or [job])]
    if not units:
        return ["collector: no job was submitted"]
    completed = sum(1 for u in units if u._status == "completed")
    where = Path(report.collector_jobs[0].output_dir)
    outputs = len(report.collector.outputs) if report.collector is not None else 0
    lines = [f"collector: {completed}/{len(units)} job(s) completed ({outputs} output files in {where}/<job>/)"]
    ran = [w for w in (getattr(u.result, "where", None) for u in units) if w is not None]
    batch_jobs = sorted({w.job_id for w in ran if w.job_id}, key=lambda j: (len(j), j))
    if batch_jobs:
        lines.append(f"  ran in batch job(s) {', '.join(batch_jobs)}")
    elif ran:
        lines.append(f"  ran on {', '.join(sorted({w.host for w in ran}))}")
    failed = [unit for unit in units if unit._status == "failed"]
    for unit in failed:
        lines.append(f"  failed: {unit.name}, log {Path(unit.working_dir, 'stderr')}")
    if failed:
        stderr = Path(failed[0].working_dir, "stderr")
        last = [line for line in stderr.read_text(errors="replace").splitlines() if line.strip()][-1:] \
            if stderr.exists() else []
        lines.append(f"  the first one's last line: {last[0] if last else '(its stderr is empty)'}")
    return lines


def format_report(report: DemoReport, target: str) -> str:
    outcome = report.outcome
    jobs = sum(len(job.subjobs) or 1 for job in report.collector_jobs)
    lines = [f"caf-hpc demo on {target}: {len(report.input_files)} raw hit files (one per run) through "
             f"{jobs} collector job(s), then {len(ALGORITHM_NAMES)} algorithms in order",
             f"flavour: {describe_flavour(report.flavour)}", "", *_collector_lines(report), ""]
    width = max(len(n) for n in ALGORITHM_NAMES)
    lines.append(f"{'algorithm':<{width}}  {'IoV':<52}  result")
    lines.append(f"{'-' * width}  {'-' * 52}  {'-' * 18}")
    for name in ALGORITHM_NAMES:
        if name not in outcome.results:
            why = "an earlier algorithm failed" if outcome.results else "the collector step failed"
            lines.append(f"{name:<{width}}  {f'(not run: {why})':<52}  -")
            continue
        rows = result_rows(outcome.results[name]) or [("(no result sent)", "-")]
        for i, (iov, code) in enumerate(rows):
            lines.append(f"{name if i == 0 else '':<{width}}  {iov:<52}  {code}")
    lines += ["", f"final state: {outcome.final_state}  (calibration: {report.state})"]
    if outcome.error is not None:
        lines.append(f"error: {outcome.error}")
    logs = [f"  {name:<{width}}  {report.log_file(name)}" for name in ALGORITHM_NAMES
            if report.log_file(name).exists()]
    if logs:
        lines += ["", "logs:", *logs]
    database = report.database_dir / "database.txt"
    if database.exists():
        lines += [f"output database: {database}", "",
                  "calibrated vs simulated truth (max |difference| over channels and runs):"]
        for payload, worst in report.residuals.items():
            shown = "missing" if worst is None else f"{worst:.4g} {_UNITS.get(payload, '')}"
            lines.append(f"  {payload:<12} {shown}")
    steps = [f"{label} {seconds:.2f} s" for label, seconds in (("collector step", report.step_time("collector")),
             ("algorithm step", report.step_time("algorithms"))) if seconds is not None]
    lines += ["", f"wall time: {', '.join(steps + [f'whole calibration {report.wall_time:.2f} s'])}"]
    if report.page is not None:
        lines.append(f"report (timeline, constants against run): {report.page}")
    elif _without_bokeh():
        lines.append("no report page: Bokeh is not installed here (the worker image leaves it out)")
    return "\n".join(lines)
