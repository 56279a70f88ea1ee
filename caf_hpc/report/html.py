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
from typing import Optional

from . import Attempt, attempts, latest_database, payload_series, runs_of, seconds, truth_values

#: Colour of each outcome on the timeline.
COLOURS = {"COMPLETED": "#2e7d32", "FAILED": "#c62828", "lost": "#9e9e9e", "running": "#1565c0", "waiting": "#fbc02d"}


def _timeline(rows: list[Attempt]):
    from bokeh.models import ColumnDataSource, FactorRange, HoverTool
    from bokeh.plotting import figure

    shown = [a for a in rows if a.worker != "-" and (a.started is not None or a.finished is not None)]
    lanes = sorted({a.worker for a in shown})
    now = max([a.finished or a.started or 0 for a in shown] + [0])
    data = {key: [] for key in ("lane", "left", "right", "colour", "outcome", "label", "waited", "ran", "results",
                                "log")}
    for a in shown:
        start = a.started if a.started is not None else a.finished - 0.05  # lost before anything arrived
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
                  y_range=FactorRange(*lanes) if lanes else FactorRange("-"), height=140 + 40 * max(1, len(lanes)),
                  sizing_mode="stretch_width", tools="xpan,xwheel_zoom,reset,save", name="timeline")
    plot.hbar(y="lane", left="left", right="right", height=0.7, color="colour", source=source, legend_field="outcome")
    plot.add_tools(HoverTool(tooltips=[("", "@label"), ("outcome", "@outcome"), ("waited", "@waited"),
                                       ("ran", "@ran"), ("results", "@results"), ("log", "@log")]))
    plot.legend.orientation = "horizontal"
    plot.add_layout(plot.legend[0], "above")
    plot.xaxis.axis_label = "time (UTC)"
    return plot


def _constants(records: list[dict], truth: Optional[dict]) -> list:
    from bokeh.models import FactorRange
    from bokeh.palettes import Category20_20
    from bokeh.plotting import figure

    plots = []
    for calibration in sorted({r["calibration"] for r in records}):
        database_txt = latest_database(records, calibration)
        if database_txt is None:
            continue
        runs = runs_of(database_txt, truth)
        labels = [f"{exp}.{run}" for exp, run in runs]
        for (payload, column), points in payload_series(database_txt, runs).items():
            channels = max(len(values) for _, _, values in points)
            plot = figure(title=f"{calibration}: {payload}.{column} against run (exp.run)",
                          x_range=FactorRange(*labels), height=320, sizing_mode="stretch_width",
                          tools="pan,wheel_zoom,box_zoom,reset,save", name=f"constants-{payload}-{column}")
            plot.xaxis.major_label_orientation = math.pi / 3
            by_run = {(exp, run): values for exp, run, values in points}
            for channel in range(channels):
                colour = Category20_20[channel % 20]
                values = [_at(by_run.get(run), channel) for run in runs]
                legend = {"legend_label": "calibrated"} if channel == 0 else {}
                plot.line(labels, values, color=colour, line_width=2, **legend)
                expected = [_at(truth_values(truth, payload, column, *run), channel) for run in runs]
                if any(not math.isnan(v) for v in expected):
                    legend = {"legend_label": "simulated truth"} if channel == 0 else {}
                    plot.line(labels, expected, color=colour, line_dash="dashed", line_alpha=0.7, **legend)
            if plot.legend:
                plot.legend.location = "top_left"
                plot.legend.click_policy = "hide"
            plots.append(plot)
    return plots


def _at(values, index: int) -> float:
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
            seconds(a.waited), seconds(a.ran), a.where))
            + f"<td><a href='{html.escape(link)}'>{html.escape(Path(a.log).name)}</a></td></tr>")
    return "\n".join(lines + ["</table>"])


def write_page(records: list[dict], page: Path, truth: Optional[dict] = None) -> Path:
    """Writes the report page to ``page``; returns it."""
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.models import Div
    from bokeh.resources import INLINE

    rows = [a for record in records for a in attempts(record)]
    title = ", ".join(sorted({r["calibration"] for r in records}))
    heading = Div(text=f"<h1>caf-hpc report: {html.escape(title)}</h1>"
                       f"<p>{len(rows)} strategy attempt(s) in {len(records)} run record(s); "
                       f"workers from {html.escape(records[-1].get('target') or '-')}</p>",
                  sizing_mode="stretch_width")
    table = Div(text=_log_table(rows, page), sizing_mode="stretch_width", name="logs",
                styles={"font-family": "monospace"})
    layout = column(heading, _timeline(rows), table, *_constants(records, truth), sizing_mode="stretch_width")
    page.write_text(file_html(layout, resources=INLINE, title=f"caf-hpc report: {title}"))
    return page
