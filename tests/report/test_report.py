"""`caf-hpc report`: the table of attempts, and the page in a real headless browser."""
from __future__ import annotations

import time

import pytest
from tests.helpers.requirements import require_browser
from tests.helpers.scripted import ok, scripted

from caf_hpc import runner_for
from caf_hpc.cli import main
from caf_hpc.report import attempts, load_record, load_records, summary
from caf_hpc.report.html import write_page


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
    assert err.startswith(f"caf-hpc: error: no run record (caf-hpc-run.json) below {tmp_path}") and "Traceback" not in err


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
    for (const element of root.querySelectorAll('*')) if (element.shadowRoot) found = found.concat(find(element.shadowRoot, selector));
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
