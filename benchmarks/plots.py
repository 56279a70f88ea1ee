"""``figures.png``: every measure in one picture, caf-hpc against the baselines, targets as dashed lines."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a file, no display
import matplotlib.pyplot as plt

from .record import CAF_HPC, CAF_LOCAL, REFERENCE, REFERENCE_FAST, Measure

_COLOURS = {CAF_HPC: "#1f77b4", REFERENCE: "#d62728", REFERENCE_FAST: "#ff7f0e", CAF_LOCAL: "#d62728"}


def _colour(label: str) -> str:
    if label.startswith(CAF_LOCAL):
        return _COLOURS[CAF_LOCAL]
    return _COLOURS.get(label, "#1f77b4" if label.startswith(CAF_HPC) else "#7f7f7f")


def _short(label: str) -> str:
    return label.replace("caf-hpc on ", "").replace(", workers in the container", "\n+ container") \
        .replace("reference, ", "ref.\n").replace("caf-hpc, ", "caf-hpc\n").replace(" sent by value", "\nby value") \
        .replace(" backend", "").replace(", to the last subjob's end", "\nlast job's end") \
        .replace("to the last subjob's end", "last job's end").replace("the first script's own start", "script starts")


def _target(axes, measure: Measure) -> None:
    if measure.target is not None:
        axes.axhline(measure.target, color="black", linestyle="--", linewidth=1, label=f"target {measure.target_text}")
        axes.legend(fontsize=7, loc="best")


def _bars(axes, measure: Measure, log: bool = False) -> None:
    labels = list(measure.figures)
    medians = [measure.figures[label].median for label in labels]
    below = [median - measure.figures[label].spread[0] for label, median in zip(labels, medians, strict=True)]
    above = [measure.figures[label].spread[1] - median for label, median in zip(labels, medians, strict=True)]
    axes.bar(range(len(labels)), medians, yerr=[below, above], capsize=3, color=[_colour(label) for label in labels])
    axes.set_xticks(range(len(labels)), [_short(label) for label in labels], fontsize=7)
    for x, median in enumerate(medians):
        axes.annotate(f"{median:,.0f}" if median >= 1000 else f"{median:.3g}", (x, median), ha="center",
                      va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    if log:
        axes.set_yscale("log")
    _target(axes, measure)


def _latency(axes, measure: Measure) -> None:
    labels = list(measure.series)
    boxes = axes.boxplot([measure.series[label] for label in labels], whis=(5, 95), showfliers=False,
                         patch_artist=True, medianprops={"color": "black"})
    for box, label in zip(boxes["boxes"], labels, strict=True):
        box.set_facecolor(_colour(label))
    axes.set_xticks(range(1, len(labels) + 1), [_short(label) for label in labels], fontsize=7)
    axes.set_yscale("log")
    _target(axes, measure)


def _memory(axes, measure: Measure) -> None:
    """Growth since the first run, on a scale that shows the target: how far below it, at a glance."""
    for label, rss in measure.series.items():
        axes.plot(range(1, len(rss) + 1), [value - rss[0] for value in rss], color=_colour(label), label=label)
    axes.set_ylim(-1, (measure.target or 1) * 1.15)
    axes.set_xlabel("run", fontsize=8)
    _target(axes, measure)


def _timeline(axes, measure: Measure) -> None:
    spans = measure.series.get(CAF_HPC, [])
    lanes = sorted({name.split("Sleeps")[0] for name, _, _ in spans})
    for name, began, ended in spans:
        lane = lanes.index(name.split("Sleeps")[0])
        axes.barh(lane, ended - began, left=began, color=_colour(CAF_HPC), edgecolor="white")
    axes.set_yticks(range(len(lanes)), [f"calibration {lane[1:]}" for lane in lanes], fontsize=7)
    axes.set_xlabel("s since the first run()", fontsize=8)


_PANELS = {"overhead_local": _bars, "realistic": _bars, "overhead_slurm": _bars, "latency": _latency,
           "throughput": _bars, "wall_over_sum": _bars, "cold_start": _bars, "memory": _memory,
           "parallel": _timeline, "many": _bars, "root": _bars, "fork_server": _bars, "collector_throughput": _bars,
           "collector_latency": _bars, "collector_wall": _bars, "collector_slurm": _bars, "allocation": _bars,
           "allocation_wall": _bars}
_LOG = {"overhead_local", "throughput", "root", "collector_latency"}


def _with_batch(measures: list) -> list:
    """The Slurm overhead as one more bar of the local overhead's panel, beside its baselines."""
    by_key = {measure.key: measure for measure in measures if not measure.skipped}
    local, slurm = by_key.get("overhead_local"), by_key.get("overhead_slurm")
    if local is None or slurm is None:
        return measures
    merged = replace(local, title=f"{local.title}; on the testbed's Slurm (target ≤ {slurm.target:g} ms)",
                     figures={**local.figures, **slurm.figures})
    return [merged if measure is local else measure for measure in measures if measure is not slurm]


def draw(measures: list, path: Path, title: str) -> None:
    shown = [measure for measure in _with_batch(measures) if not measure.skipped and measure.key in _PANELS]
    columns = 3
    rows = (len(shown) + columns - 1) // columns
    figure, grid = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.9 * rows), squeeze=False)
    # the grid is filled row by row and may have more panels than measures: those are hidden below
    for axes, measure in zip(grid.flat, shown, strict=False):
        panel = _PANELS[measure.key]
        if panel is _bars:
            panel(axes, measure, log=measure.key in _LOG)
        else:
            panel(axes, measure)
        unit = "" if measure.key == "parallel" else f" ({measure.unit})"
        heading = measure.title if measure.key != "parallel" else f"{measure.title}: caf-hpc's strategies"
        axes.set_title(f"{heading}{unit}", fontsize=8, wrap=True)
        axes.tick_params(axis="y", labelsize=7)
    for axes in list(grid.flat)[len(shown):]:
        axes.set_visible(False)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
