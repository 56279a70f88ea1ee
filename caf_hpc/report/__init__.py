"""Reading a calibration directory after (or during) its run: the runs' records and the constants.

``caf-hpc report DIR`` prints a table of every strategy attempt in the run records
(``caf-hpc-run.json``, docs/run-record.md) found under ``DIR``, and writes a self-contained
HTML page with a timeline and the calibrated constants against run (``report.html``).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import local_database
from ..caf_types import ExpRun
from ..steering.progress import RECORD_FILE, RECORD_FORMAT, RECORD_VERSION

#: The true constants, when known (the demo writes them), in a calibration directory: the page then draws
#: calibrated minus true, per channel.
TRUTH_FILE = "truth.json"


class ReportError(ValueError):
    """A directory holds no run record, or a record cannot be read."""


@dataclass(frozen=True)
class Attempt:
    """One strategy attempt, flattened from a run record for tables and the timeline."""

    calibration: str
    iteration: int
    algorithm: str
    outcome: str            # COMPLETED / FAILED as judged, or "lost", or "running"
    worker: str             # the lane of the timeline: worker address, else host and pid
    where: str
    submitted: float
    started: float | None
    finished: float | None
    results: int
    result_codes: dict
    log: str
    error: str | None

    @property
    def waited(self) -> float | None:
        return None if self.started is None else self.started - self.submitted

    @property
    def ran(self) -> float | None:
        return None if self.started is None or self.finished is None else self.finished - self.started


def find_records(directory: str | Path) -> list[Path]:
    """Every run record below ``directory``, by calibration and iteration."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ReportError(f"{directory} is not a directory; give the calibration's output directory")
    records = sorted(directory.rglob(RECORD_FILE))
    if not records:
        raise ReportError(f"no run record ({RECORD_FILE}) below {directory}: give the directory a calibration "
                          "ran in with caf-hpc's runner (CAF's output directory, or the demo's --output)")
    return records


def load_records(directory: str | Path) -> list[dict]:
    """Every run record below ``directory`` (``find_records``), read and checked (``load_record``)."""
    return [load_record(path) for path in find_records(directory)]


def load_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ReportError(f"{path}: not a readable run record ({err})") from None
    if record.get("format") != RECORD_FORMAT or not isinstance(record.get("version"), int):
        raise ReportError(f"{path}: not a caf-hpc run record (format {record.get('format')!r})")
    if record["version"] > RECORD_VERSION:
        raise ReportError(f"{path}: run record version {record['version']} is newer than this caf-hpc reads "
                          f"({RECORD_VERSION}); update caf-hpc")
    record["path"] = str(path)
    return record


def attempts(record: dict) -> list[Attempt]:
    """The record's attempts; a strategy with none yet shows as one waiting row."""
    rows = []
    for strategy in record["strategies"]:
        tries = strategy["attempts"] or [{"outcome": "waiting", "started": None, "finished": None, "results": 0,
                                           "result_codes": {}, "host": None, "pid": None, "worker": None,
                                           "job_id": None, "error": None}]
        for attempt in tries:
            outcome = attempt["outcome"]
            if outcome == "ended":
                outcome = attempt.get("final_state") or strategy.get("final_state") or "ended"
            if outcome == "ended" or (outcome == "running" and record.get("finished")):
                outcome = "FAILED"  # the run ended without this attempt's end: it was given up
            where = ", ".join(p for p in (attempt.get("host") and f"host {attempt['host']}",
                                          attempt.get("job_id") and f"job {attempt['job_id']}") if p) or "-"
            worker = attempt.get("worker") or (f"{attempt['host']}:{attempt['pid']}" if attempt.get("host") else "-")
            rows.append(Attempt(record["calibration"], record["iteration"], strategy["algorithm"], outcome, worker,
                                where, strategy["submitted"], attempt.get("started"), attempt.get("finished"),
                                attempt.get("results", 0), attempt.get("result_codes", {}), strategy["log"],
                                attempt.get("error") or (strategy.get("error") if outcome == "FAILED" else None)))
    return rows


def duration_text(value: float | None) -> str:
    """A duration for the report's tables, '-' where it is not known."""
    return "-" if value is None else f"{value:.2f}"


def summary(records: list[dict]) -> str:
    """The table ``caf-hpc report`` prints: one line per attempt, then each failure's message."""
    header = ("calibration", "it", "algorithm", "outcome", "results", "waited s", "ran s", "where")
    rows = [header]
    errors = []
    for record in records:
        for a in attempts(record):
            codes = ", ".join(f"{n}×{code}" for code, n in a.result_codes.items())
            rows.append((a.calibration, str(a.iteration), a.algorithm, a.outcome,
                         f"{a.results}" + (f" ({codes})" if codes else ""), duration_text(a.waited),
                         duration_text(a.ran), a.where))
            if a.error:
                errors.append(f"{a.calibration} iteration {a.iteration}, {a.algorithm}: "
                              f"{a.error.splitlines()[0]}\n  log: {a.log}")
        if not record.get("finished"):
            errors.append(f"{record['calibration']} iteration {record['iteration']}: still running, or its steering "
                          f"script was killed (record written {time.ctime(Path(record['path']).stat().st_mtime)})")
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines + ([""] + errors if errors else []))


def payload_series(database_txt: Path, runs: list) -> dict:
    """For each payload and column in ``database_txt``: the values at each (exp, run) of ``runs``.

    ``{(payload, column): [(exp, run, values or None), ...]}``, ``values`` a list (one per
    channel) for the revision valid for that run, as basf2's database would pick it.
    """
    entries = local_database.read_entries(database_txt)  # once, and each revision's file once below
    payloads: dict = {}
    series: dict = {}
    for name in sorted({entry.name for entry in entries}):
        for exp, run in runs:
            entry = local_database.newest_entry(entries, name, ExpRun(exp, run))
            if entry is None:
                continue
            if entry.revision not in payloads.setdefault(name, {}):
                payloads[name][entry.revision] = local_database.read_payload(database_txt.parent, name, entry.revision)
            for column, values in payloads[name][entry.revision].items():
                values = values if isinstance(values, list) else [values]
                series.setdefault((name, column), []).append((exp, run, values))
    return series


def runs_of(database_txt: Path, truth: dict | None) -> list:
    """The (exp, run) points to evaluate payloads at: the truth's runs, else every IoV's ends."""
    points = set()
    for payload in (truth or {}).values():
        for values in payload.values():
            if isinstance(values, dict):
                points |= {tuple(int(x) for x in key.split(",")) for key in values}
    if not points:
        for entry in local_database.read_entries(database_txt):
            iov = entry.iov
            points.add((iov.exp_low, iov.run_low))
            if iov.run_high >= 0:
                points.add((iov.exp_high, iov.run_high))
    return sorted(points)


def latest_database(records: list[dict], calibration: str) -> Path | None:
    """The output database of the calibration's last iteration that has one."""
    for record in sorted((r for r in records if r["calibration"] == calibration), key=lambda r: -r["iteration"]):
        database_txt = Path(record["path"]).parent / "outputdb" / "database.txt"
        if database_txt.exists():
            return database_txt
    return None


def load_truth(path: str | Path | None) -> dict | None:
    """``{payload: {column: values | {"exp,run": values}}}``: what the constants should be, if known."""
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ReportError(f"--truth {path}: cannot read it as JSON ({err})") from None


def truth_values(truth: dict | None, payload: str, column: str, exp: int, run: int) -> Any | None:
    values = ((truth or {}).get(payload) or {}).get(column)
    if isinstance(values, dict):
        return values.get(f"{exp},{run}")
    return values
