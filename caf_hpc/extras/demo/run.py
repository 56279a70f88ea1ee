"""The demo calibration end to end: simulate collector output, run the three algorithms
through a runner exactly as CAF would, and report what came out."""
from __future__ import annotations

import importlib.util
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..standins import cpp
from ..standins.driver import IterationOutcome, run_algorithms
from ..standins.utils import AlgResult
from . import algorithms as python_algorithms
from .algorithms import ALGORITHM_NAMES, check_against_truth
from .simulate import TRUTH_FILENAME, simulate

CALIBRATION_NAME = "demo"
#: The demo's two sets of algorithms: C++ through ROOT, or pure Python.
FLAVOURS = ("cpp", "python")


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
    outcome: IterationOutcome
    input_files: list
    truth_file: Path
    wall_time: float
    residuals: dict
    flavour: str = "python"
    page: Optional[Path] = None  # the HTML report (caf-hpc report)

    @property
    def succeeded(self) -> bool:
        return not self.outcome.failed

    @property
    def database_dir(self) -> Path:
        return self.outcome.output_dir / "outputdb"

    def log_file(self, algorithm: str) -> Path:
        return self.outcome.output_dir / f"{algorithm}_stdout"


def run_demo(runner_class: type, output_dir: Path, *, seed: int = 2024, experiments: Sequence[int] = (1, 2),
             runs: int = 20, fail: Optional[str] = None, flavour: str = "python") -> DemoReport:
    """Simulates the data, runs one CAF iteration of the three algorithms, checks the payloads.

    For the ``cpp`` flavour the runner must declare the C++ classes on its workers
    (``flavour_settings``): the algorithm objects travel to them by value.
    """
    if flavour == "cpp":
        from . import cpp_algorithms as chosen
    else:
        chosen = python_algorithms  # type: ignore[assignment]
    algorithms = chosen.make_algorithms(fail=fail)
    output_dir = Path(output_dir).resolve()
    collector_dir = output_dir / "collector"
    if collector_dir.exists():
        shutil.rmtree(collector_dir)
    files = simulate(collector_dir, seed=seed, experiments=experiments, runs_per_experiment=runs,
                     output_format="root" if flavour == "cpp" else "json")
    started = time.monotonic()
    outcome = run_algorithms(runner_class, CALIBRATION_NAME, algorithms, files, output_dir / "calibration")
    wall = time.monotonic() - started
    residuals = check_against_truth(outcome.output_dir / "outputdb", collector_dir / TRUTH_FILENAME)
    report = DemoReport(outcome, files, collector_dir / TRUTH_FILENAME, wall, residuals, flavour)
    report.page = write_report_page(output_dir, collector_dir / TRUTH_FILENAME)
    return report


#: The demo's payload columns and the simulation's names for their true values.
_TRUTH_COLUMNS = {"Pedestals": "pedestal", "Gains": "gain", "TimeOffsets": "t0"}


def write_report_page(output_dir: Path, truth_file: Path) -> Optional[Path]:
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


def _iov(iov) -> str:
    return f"({iov.exp_low},{iov.run_low}) - ({iov.exp_high},{iov.run_high})"


def result_rows(results: list) -> list[tuple[str, str]]:
    """(IoV, result) rows; consecutive single-run IoVs with the same code are folded into one."""
    rows: list[tuple[str, str, int]] = []
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


def format_report(report: DemoReport, target: str) -> str:
    outcome = report.outcome
    lines = [f"caf-hpc demo on {target}: {len(report.input_files)} collector files, "
             f"{len(ALGORITHM_NAMES)} algorithms in order",
             f"flavour: {describe_flavour(report.flavour)}", ""]
    width = max(len(n) for n in ALGORITHM_NAMES)
    lines.append(f"{'algorithm':<{width}}  {'IoV':<52}  result")
    lines.append(f"{'-' * width}  {'-' * 52}  {'-' * 18}")
    for name in ALGORITHM_NAMES:
        if name not in outcome.results:
            lines.append(f"{name:<{width}}  {'(not run: an earlier algorithm failed)':<52}  -")
            continue
        rows = result_rows(outcome.results[name]) or [("(no result sent)", "-")]
        for i, (iov, code) in enumerate(rows):
            lines.append(f"{name if i == 0 else '':<{width}}  {iov:<52}  {code}")
    lines += ["", f"final state: {outcome.final_state}"]
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
    lines += ["", f"wall time of the algorithm step: {report.wall_time:.2f} s"]
    if report.page is not None:
        lines.append(f"report (timeline, constants against run): {report.page}")
    elif _without_bokeh():
        lines.append("no report page: Bokeh is not installed here (the worker image leaves it out)")
    return "\n".join(lines)
