"""The suite's report: ``report.md`` to read, ``report.json`` to compare, ``figures.png`` to look at first."""
from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from . import CHECKOUT
from .record import CAF_HPC, Measure

_PACKAGES = ("caf-hpc", "dask", "distributed", "dask-jobqueue", "cloudpickle", "tornado", "root")


def _first_line(command: list) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20, cwd=CHECKOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 and done.stdout else None


def _field(path: Path, key: str, separator: str) -> str:
    """The value of the first ``key<separator>value`` line of ``path``, or '' (no such file or line)."""
    lines = path.read_text().splitlines() if path.exists() else []
    return next((line.split(separator, 1)[1].strip() for line in lines if line.startswith(key)), "")


def machine() -> dict:
    cpu = _field(Path("/proc/cpuinfo"), "model name", ":") or platform.processor()
    pretty = _field(Path("/etc/os-release"), "PRETTY_NAME", "=").strip('"')
    return {"label": f"{platform.system().lower()}-{platform.machine()}-{os.cpu_count()}cpu",
            "cpu": cpu, "logical_cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
            "memory_gb": round(psutil.virtual_memory().total / 1e9, 1), "os": pretty or platform.platform(),
            "kernel": platform.release(), "python": platform.python_version()}


def versions(batch: bool) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    commit = _first_line(["git", "rev-parse", "--short", "HEAD"])
    if commit and _first_line(["git", "status", "--porcelain", "--untracked-files=no"]):
        commit += " (with uncommitted changes)"
    found["commit"] = commit
    if batch:
        found["slurm"] = _first_line(["sinfo", "--version"])
        found["podman"] = _first_line(["podman", "--version"])
    return found


def number(value: float, unit: str) -> str:
    if unit == "results/s":
        return f"{value:,.0f}"
    if unit.startswith("×"):
        return f"{value:.3f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _figure_text(measure: Measure, label: str) -> str:
    figure = measure.figures[label]
    low, high = figure.spread
    text = f"{number(figure.median, measure.unit)}"
    if len(figure.samples) > 1:
        text += f" ({number(low, measure.unit)}–{number(high, measure.unit)})"
    return text


def _met(measure: Measure, quick: bool) -> str:
    if quick:
        return "not judged"
    return {True: "met", False: "**missed**", None: "—"}[measure.met]


def markdown(data: dict, measures: list, picture: str | None) -> str:
    m, v = data["machine"], data["versions"]
    lines = [f"# caf-hpc benchmarks: {m['label']}", "",
             f"Run on {data['started']} with `python -m benchmarks{' --quick' if data['quick'] else ''}"
             f"{' --only ' + ','.join(data['only']) if data.get('only') else ''}` in "
             f"{data['seconds'] / 60:.1f} min. Medians over repetitions, the spread (min–max) in brackets."
             + (" A smoke run: its counts are too small for the figures to mean anything." if data["quick"] else ""),
             "",
             f"**Machine:** {m['cpu']}, {m['logical_cores']} logical cores ({m['usable_cores']} usable), "
             f"{m['memory_gb']} GB; {m['os']}, Linux {m['kernel']}; Python {m['python']}.", "",
             "**Versions:** " + ", ".join(f"{name} {version}" for name, version in v.items() if version), ""]
    if picture:
        lines += [f"![the figures at a glance]({picture})", ""]
    lines += ["## Targets", "", "| measure | caf-hpc | target | | ratios |", "|---|---|---|---|---|"]
    for measure in measures:
        if measure.skipped:
            lines.append(f"| {measure.title} | not measured: {measure.skipped} | {measure.target_text} | — | |")
            continue
        judged = _figure_text(measure, measure.judged) if measure.judged in measure.figures else "—"
        ratios = "; ".join(f"{name} = {value:,.1f}" if value >= 10 else f"{name} = {value:.2f}"
                           for name, value in measure.ratio_values().items())
        where = "" if measure.judged == CAF_HPC else f" ({measure.judged})"
        lines.append(f"| {measure.title} | {judged} {measure.unit}{where} | {measure.target_text} | "
                     f"{_met(measure, data['quick'])} | {ratios} |")
    lines += ["", "## Every figure", ""]
    for measure in measures:
        lines += [f"### {measure.title}", "", measure.how, ""]
        if measure.skipped:
            lines += [f"Not measured: {measure.skipped}.", ""]
            continue
        lines += [f"| runner | median ({measure.unit}) | min | max | n | note |", "|---|---|---|---|---|---|"]
        for label, figure in measure.figures.items():
            low, high = figure.spread
            lines.append(f"| {label} | {number(figure.median, measure.unit)} | {number(low, measure.unit)} | "
                         f"{number(high, measure.unit)} | {len(figure.samples)} | {figure.note} |")
        lines.append("")
    return "\n".join(lines)


def write(out: Path, measures: list, started: datetime, seconds: float, quick: bool, batch: bool,
          only: list | None = None) -> dict:
    """Writes report.json, report.md and (with matplotlib) figures.png into ``out``; returns the JSON's data."""
    out.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "format": 1, "started": started.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(seconds, 1), "quick": quick, "only": only, "machine": machine(),
        "versions": versions(batch), "measures": [measure.as_dict() for measure in measures]}
    (out / "report.json").write_text(json.dumps(data, indent=1) + "\n")
    picture = None
    try:
        from .plots import draw
    except ImportError as err:  # matplotlib is the bench extra's
        print(f"no figures.png: {err} (pip install -e '.[bench]')")
    else:
        draw(measures, out / "figures.png", f"caf-hpc benchmarks, {data['machine']['label']}, {data['started']}")
        picture = "figures.png"
    (out / "report.md").write_text(markdown(data, measures, picture) + "\n")
    return data


def now() -> datetime:
    return datetime.now(timezone.utc)
