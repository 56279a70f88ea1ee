"""The report page: a timeline of every strategy attempt and the constants against run, with Bokeh.

One self-contained HTML file (Bokeh's JavaScript inlined): it opens from a batch site's
file system or a laptop without network. Logs are linked relative to the page, so that
the calibration directory can be copied with its report.
"""
from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from . import Attempt, attempts, duration_text, latest_database, payload_series, runs_of, truth_values

if TYPE_CHECKING:
    from bokeh.plotting import figure  # for the annotations; bokeh is imported where a page is drawn

#: Colour of each outcome on the timeline.
COLOURS = {"COMPLETED": "#2e7d32", "FAILED": "#c62828", "lost": "#9e9e9e", "running": "#1565c0", "waiting": "#fbc02d"}


def _timeline(rows: list[Attempt]) -> figure:
    from bokeh.models import ColumnDataSource, FactorRange, HoverTool
    from bokeh.plotting import figure

    shown = [a for a in rows if a.worker != "-" and (a.started is not None or a.finished is not None)]
    lanes = sorted({a.worker for a in shown})
    now = max([a.finished or a.started or 0 for a in shown] + [0])
    data: dict[str, list] = {key: [] for key in ("lane", "left", "right", "colour", "outcome", "label", "waited",
                                                 "ran", "results", "log")}
    for a in shown:
        # lost before anything arrived: finished, not started (see shown)
        start = a.started if a.started is not None else cast(float, a.finished) - 0.05
        end = a.finished if a.finished is not None else now
        data["lane"].append(a.worker)
        data["left"].append(start * 1000)
        data["right"].append(max(end, start + 0.005) * 1000)  # a bar a few ms long is still seen
        data["colour"].append(COLOURS.get(a.outcome, "#6a1b9a"))
        data["outcome"].append(a.outcome)
        data["label"].append(f"{a.calibration} it {a.iteration}: {a.algorithm}")
        data["waited"].append("-" if a.waited is None else f"{a.waited:.2f} s")
        data["ran"].append("-" if a.ran is None else f"{a.ran:.2f} s")
        data["results"].append(str(a.results))
        data["log"].append(a.log)
    source = ColumnDataSource(data, name="attempts")
    plot = figure(title="Strategy attempts, one lane per worker", x_axis_type="datetime",
                  y_range=FactorRange(factors=lanes or ["-"]), height=140 + 40 * max(1, len(lanes)),
                  sizing_mode="stretch_width", tools="xpan,xwheel_zoom,reset,save", name="timeline")
    plot.hbar(y="lane", left="left", right="right", height=0.7, color="colour", source=source, legend_field="outcome")
    plot.add_tools(HoverTool(tooltips=[("", "@label"), ("outcome", "@outcome"), ("waited", "@waited"),
                                       ("ran", "@ran"), ("results", "@results"), ("log", "@log")]))
    plot.legend.orientation = "horizontal"
    plot.add_layout(plot.legend[0], "above")
    plot.xaxis.axis_label = "time (UTC)"
    return plot


def constant_plots(records: list[dict], truth: dict | None) -> list[figure]:
    """One plot per payload column. With the truth known: the residual (calibrated minus truth) per
    channel against run, around a zero line, which is what a calibrator judges (the calibrated and the
    true values drawn together lie on top of each other); without it, the constants themselves. The
    runs of each experiment are a group of their own on the axis, and no line joins one experiment
    to the next: constants are not continuous across an experiment boundary. Channels are told apart
    by colour and by hovering, not by a legend, which would hide the lines under it."""
    plots = []
    for calibration in sorted({r["calibration"] for r in records}):
        database_txt = latest_database(records, calibration)
        if database_txt is None:
            continue
        runs = runs_of(database_txt, truth)
        for (payload, column), points in payload_series(database_txt, runs).items():
            by_run = {(exp, run): values for exp, run, values in points}
            expected = {run: truth_values(truth, payload, column, *run) for run in runs}
            residual = any(value is not None for value in expected.values())
            plots.append(_constant_plot(calibration, payload, column, runs, by_run, expected if residual else None))
    return plots


def _constant_plot(calibration: str, payload: str, column: str, runs: list, by_run: dict,
                   expected: dict | None) -> figure:
    from bokeh.models import BasicTickFormatter, ColumnDataSource, FactorRange, HoverTool
    from bokeh.models.annotations import Span
    from bokeh.palettes import Category20_20
    from bokeh.plotting import figure

    channels = max(len(v) if isinstance(v, list) else 1 for v in by_run.values())
    factors = [(f"exp {exp}", str(run)) for exp, run in runs]
    lines: dict = {key: [] for key in ("xs", "ys", "channel", "colour")}
    points: dict = {key: [] for key in ("x", "y", "channel", "colour", "run", "value", "truth")}
    for channel in range(channels):
        colour = Category20_20[channel % 20]
        for experiment in sorted({exp for exp, _ in runs}):
            xs, ys = [], []
            for exp, run in runs:
                if exp != experiment:
                    continue
                value = _at(by_run.get((exp, run)), channel)
                true = math.nan if expected is None else _at(expected[(exp, run)], channel)
                y = value if expected is None else value - true
                xs.append((f"exp {exp}", str(run)))
                ys.append(y)
                if not math.isnan(y):
                    points["x"].append((f"exp {exp}", str(run)))
                    points["y"].append(y)
                    points["channel"].append(channel)
                    points["colour"].append(colour)
                    points["run"].append(f"{exp}.{run}")
                    points["value"].append(f"{value:.6g}")
                    points["truth"].append("-" if expected is None else f"{true:.6g}")
            lines["xs"].append(xs)
            lines["ys"].append(ys)
            lines["channel"].append(channel)
            lines["colour"].append(colour)
    what = f"{payload}.{column}"
    count = f"{channels} channel{'s' if channels != 1 else ''}"
    if expected is not None:
        title = f"{calibration}: {what} minus the simulated truth, {count}, against run (hover for the channel)"
    else:
        title = f"{calibration}: {what}, {count}, against run (no truth given; hover for the channel)"
    plot = figure(title=title, x_range=FactorRange(factors=factors, group_padding=1.5), height=300,
                  sizing_mode="stretch_width", tools="pan,wheel_zoom,box_zoom,reset,save",
                  name=f"constants-{payload}-{column}")
    plot.multi_line("xs", "ys", color="colour", line_width=1.5, line_alpha=0.8,
                    source=ColumnDataSource(lines, name=f"lines-{payload}-{column}"))
    dots = plot.scatter("x", "y", color="colour", size=4,
                        source=ColumnDataSource(points, name=f"points-{payload}-{column}"))
    tooltips = [("channel", "@channel"), ("exp.run", "@run"), ("calibrated", "@value")]
    if expected is not None:
        tooltips += [("truth", "@truth"), ("calibrated - truth", "@y{0.[0000]}")]
        plot.add_layout(Span(location=0, dimension="width", line_color="#444444", line_dash="dashed"))
        plot.yaxis.axis_label = "calibrated - truth"
    else:
        plot.yaxis.axis_label = what
    plot.add_tools(HoverTool(renderers=[dots], tooltips=tooltips))
    plot.xaxis.axis_label = "run, by experiment"
    plot.xaxis.major_label_text_font_size = "8px"
    plot.xgrid.grid_line_color = None
    plot.yaxis.formatter = BasicTickFormatter(use_scientific=False)  # 0.001, not 1.000e-3
    return plot


def _at(values: Any, index: int) -> float:
    if values is None:
        return math.nan
    values = values if isinstance(values, list) else [values]
    return float(values[index]) if index < len(values) and values[index] is not None else math.nan


def _log_table(rows: list[Attempt], page: Path) -> str:
    lines = ["<table class='attempts'><tr><th>calibration</th><th>iteration</th><th>algorithm</th><th>outcome</th>"
             "<th>results</th><th>waited s</th><th>ran s</th><th>where</th><th>log</th></tr>"]
    for a in rows:
        link = os.path.relpath(a.log, page.parent) if a.log else ""
        lines.append("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in (
            a.calibration, a.iteration, a.algorithm, a.outcome, a.results,
            duration_text(a.waited), duration_text(a.ran), a.where))
            + f"<td><a href='{html.escape(link)}'>{html.escape(Path(a.log).name)}</a></td></tr>")
    return "\n".join(lines + ["</table>"])


def write_page(records: list[dict], page: Path, truth: dict | None = None) -> Path:
    """Writes the report page to ``page``; returns it."""
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.models.widgets import Div
    from bokeh.resources import INLINE

    rows = [a for record in records for a in attempts(record)]
    title = ", ".join(sorted({r["calibration"] for r in records}))
    heading = Div(text=f"<h1>caf-hpc report: {html.escape(title)}</h1>"
                       f"<p>{len(rows)} strategy attempt(s) in {len(records)} run record(s); "
                       f"workers from {html.escape(records[-1].get('target') or '-')}</p>",
                  sizing_mode="stretch_width")
    table = Div(text=_log_table(rows, page), sizing_mode="stretch_width", name="logs",
                styles={"font-family": "monospace"})
    layout = column(heading, _timeline(rows), table, *constant_plots(records, truth), sizing_mode="stretch_width")
    page.write_text(file_html(layout, resources=INLINE, title=f"caf-hpc report: {title}"))
    return page
