"""`caf-hpc report`: the table of attempts, and the page in a real headless browser."""
from __future__ import annotations

import time

import pytest

from caf_hpc import runner_for
from caf_hpc.cli import main
from caf_hpc.report import attempts, load_record, load_records, summary
from caf_hpc.report.html import write_page
from tests.helpers.requirements import require_browser
from tests.helpers.scripted import ok, scripted


@pytest.fixture
def eventful(calibrate, tmp_path):
    """A calibration with a lost attempt (retried), a committed constant, and a failure at the end."""
    losing = scripted("Unlucky", ("results", 2), ("signal_worker_once", str(tmp_path / "killed"), "SIGKILL"),
                      ("commit", "Constant", {"value": [1.0, 2.0, 3.0]}), ("results", 1), ("final", "COMPLETED"))
    failing = scripted("Broken", ("results", 1, 3), ("raise", "no convergence"))
    outcome = calibrate([ok("Fine", 2), losing, failing], runner=runner_for(retries=1), root=tmp_path / "cal")
    from tests.steering.test_lost_worker import _wait_for_workers

    _wait_for_workers(2)
    return outcome, load_records(tmp_path / "cal")


def test_attempts_are_the_ones_that_ran(eventful):
    outcome, (record,) = eventful
    rows = attempts(record)
    assert [(a.algorithm, a.outcome) for a in rows] == [
        ("Fine", "COMPLETED"), ("Unlucky", "lost"), ("Unlucky", "COMPLETED"), ("Broken", "FAILED")]
    assert rows[0].results == 2 and rows[2].results == 3 and rows[3].result_codes == {"3": 1}  # a retry runs anew
    assert "raised ValueError: no convergence" in rows[3].error
    assert all(a.log.endswith(f"{a.algorithm}_stdout") for a in rows)
    assert rows[0].waited >= 0 and rows[0].ran >= 0


def test_summary_prints_a_line_per_attempt_and_each_failure(eventful, tmp_path, capsys):
    assert main(["report", str(tmp_path / "cal")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["calibration", "it", "algorithm", "outcome", "results", "waited", "s", "ran", "s",
                                "where"]
    assert [line.split()[2:4] for line in lines[2:6]] == [["Fine", "COMPLETED"], ["Unlucky", "lost"],
                                                          ["Unlucky", "COMPLETED"], ["Broken", "FAILED"]]
    assert "cal iteration 0, Broken: The strategy of algorithm Broken" in out and "Broken_stdout" in out
    assert f"report: {tmp_path / 'cal' / 'report.html'}" in out


def test_directory_without_a_record_is_one_line_naming_it(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"caf-hpc: error: no run record (caf-hpc-run.json) below {tmp_path}")
    assert "Traceback" not in err


def test_record_of_a_killed_run_reads_as_unfinished(tmp_path):
    from caf_hpc.steering.progress import RunProgress

    progress = RunProgress("cut", 0, tmp_path, "the local Dask cluster")
    progress.strategy("Alone", "key", tmp_path / "Alone_stdout")  # and then the steering script was killed
    deadline = time.monotonic() + 5  # written within WRITE_EVERY (0.2 s) of the step
    while not load_record(tmp_path / "caf-hpc-run.json")["strategies"]:
        assert time.monotonic() < deadline, "the step never reached the record"
        time.sleep(0.02)
    (record,) = load_records(tmp_path)
    assert [a.outcome for a in attempts(record)] == ["waiting"]
    assert "cut iteration 0: still running, or its steering script was killed" in summary([record])


# Bokeh draws inside shadow roots: the page's elements are found by walking them
FIND = """
function find(root, selector) {
    let found = [...root.querySelectorAll(selector)];
    for (const element of root.querySelectorAll('*'))
        if (element.shadowRoot) found = found.concat(find(element.shadowRoot, selector));
    return found;
}
"""
COUNT_CANVASES = FIND + "return find(document, 'canvas').length;"
LOG_LINKS = FIND + "return find(document, 'table.attempts a').map(a => a.getAttribute('href'));"

FIGURES = """
const doc = Bokeh.documents[0];
return [doc.get_model_by_name('attempts').get_length(),
        [...doc.all_models].filter(m => m.type == 'Figure').map(f => f.name)];
"""


def test_page_in_a_real_browser_shows_a_bar_per_attempt_and_the_constants(eventful, tmp_path):
    _, records = eventful
    page = write_page(records, tmp_path / "report.html")
    browser = require_browser()
    try:
        browser.get(page.as_uri())
        deadline = time.monotonic() + 30
        while browser.execute_script("return typeof Bokeh === 'undefined' || !Bokeh.documents.length") \
                or browser.execute_script(COUNT_CANVASES) < 2:
            assert time.monotonic() < deadline, "the page did not render"
            time.sleep(0.2)
        bars, figures = browser.execute_script(FIGURES)
        assert bars == 4  # Fine, Unlucky lost, Unlucky, Broken
        assert figures == ["timeline", "constants-Constant-value"]
        assert browser.execute_script(COUNT_CANVASES) >= len(figures)  # drawn, not only described
        assert browser.execute_script(LOG_LINKS) == [f"cal/0/algorithm_output/{name}_stdout" for name in
                                                     ("Fine", "Unlucky", "Unlucky", "Broken")]  # beside the page
    finally:
        browser.quit()


def test_screenshot_is_a_picture_of_the_page(eventful, tmp_path, capsys):
    require_browser().quit()  # Chromium is there (or the test skips, outside CI)
    png = tmp_path / "report.png"
    assert main(["report", str(tmp_path / "cal"), "--screenshot", str(png)]) == 0
    assert f"screenshot: {png}" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000  # drawn, not blank


@pytest.fixture(scope="module")
def demo_directory(tmp_path_factory):
    """The demo's output: 2 experiments x 3 runs, 16 channels, and the simulated truth beside it."""
    directory = tmp_path_factory.mktemp("report-demo") / "demo"
    assert main(["demo", "--output", str(directory), "--runs", "3", "--flavour", "python"]) == 0
    return directory


def _plots(directory, with_truth=True):
    from caf_hpc.report import TRUTH_FILE, load_truth
    from caf_hpc.report.html import constant_plots

    truth = load_truth(directory / TRUTH_FILE) if with_truth else None
    return {plot.name: plot for plot in constant_plots(load_records(directory), truth)}


def _lines(plot):
    from bokeh.models import MultiLine

    (renderer,) = [r for r in plot.renderers if isinstance(r.glyph, MultiLine)]
    return renderer.data_source.data


def test_constants_with_truth_are_drawn_as_residuals_per_channel_experiments_apart(demo_directory):
    import json

    from caf_hpc.extras.standins import database
    from caf_hpc.extras.standins.utils import ExpRun

    plot = _plots(demo_directory)["constants-Pedestals-pedestal"]
    lines = _lines(plot)
    assert len(lines["xs"]) == 16 * 2  # a line per channel and experiment
    for xs in lines["xs"]:
        assert len({exp for exp, _ in xs}) == 1 and len(xs) == 3  # never joined across experiments
    database_txt = demo_directory / "demo" / "0" / "algorithm_output" / "outputdb" / "database.txt"
    truth = json.loads((demo_directory / "truth.json").read_text())["Pedestals"]["pedestal"]
    for xs, ys, channel in zip(lines["xs"], lines["ys"], lines["channel"], strict=True):
        for (exp, run), y in zip(xs, ys, strict=True):
            exprun = ExpRun(int(exp.split()[1]), int(run))
            calibrated = database.find_payload(database_txt, "Pedestals", exprun)["pedestal"][channel]
            assert y == pytest.approx(calibrated - truth[f"{exprun.exp},{exprun.run}"][channel])
    assert max(abs(y) for ys in lines["ys"] for y in ys) < 1  # the residuals, not the constants (~200 ADC)
    assert "minus the simulated truth" in plot.title.text and plot.yaxis[0].axis_label == "calibrated - truth"
    assert not plot.legend or not plot.legend[0].items  # nothing drawn over the lines; hovering names them
    assert any(("channel", "@channel") in tool.tooltips for tool in plot.tools if hasattr(tool, "tooltips"))


def test_constants_without_truth_are_the_constants_experiments_apart(demo_directory):
    plots = _plots(demo_directory, with_truth=False)
    lines = _lines(plots["constants-Pedestals-pedestal"])
    assert all(len({exp for exp, _ in xs}) == 1 for xs in lines["xs"])
    assert 150 < min(y for ys in lines["ys"] for y in ys)  # the pedestals themselves
    assert "no truth given" in plots["constants-Pedestals-pedestal"].title.text
    # a column the truth does not cover is drawn as it is, truth or not
    assert "no truth given" in _plots(demo_directory)["constants-Pedestals-noise"].title.text


def test_screenshot_holds_the_whole_page(demo_directory, tmp_path, capsys):
    import struct

    browser = require_browser()
    try:
        browser.set_window_size(1400, 600)
        browser.get((demo_directory / "report.html").as_uri())
        deadline = time.monotonic() + 30
        while browser.execute_script("return typeof Bokeh === 'undefined' || !Bokeh.documents.length") \
                or browser.execute_script(COUNT_CANVASES) < 8:  # the timeline and seven payload columns
            assert time.monotonic() < deadline, "the page did not render"
            time.sleep(0.2)
        time.sleep(1)
        height = browser.execute_script("return document.documentElement.scrollHeight")
    finally:
        browser.quit()
    png = tmp_path / "report.png"
    assert main(["report", str(demo_directory), "--screenshot", str(png)]) == 0
    capsys.readouterr()
    width, png_height = struct.unpack(">II", png.read_bytes()[16:24])  # the PNG's IHDR
    assert width == 1400 and abs(png_height - height) <= 2, (png_height, height)
