"""The benchmark suite runs from its one command and writes its report (a smoke run: no figure is judged)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import BATCH_MEASURES, KEYS

pytestmark = pytest.mark.timeout(420)

CHECKOUT = Path(__file__).resolve().parents[2]


def test_a_quick_run_writes_every_measure_into_markdown_json_and_a_picture(tmp_path):
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)], cwd=CHECKOUT,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"report: {tmp_path / 'report.md'}" in done.stdout
    data = json.loads((tmp_path / "report.json").read_text())
    measures = {measure["key"]: measure for measure in data["measures"]}
    assert list(measures) == list(KEYS)
    assert all(measures[key]["skipped"] == "left out (--quick)" for key in BATCH_MEASURES)
    for key, measure in measures.items():
        if key in BATCH_MEASURES or (key == "root" and "ROOT is not installed" in (measure["skipped"] or "")):
            continue
        assert measure["skipped"] is None, measure
        for label, figure in measure["figures"].items():
            assert figure["n"] >= 1 and figure["min"] <= figure["median"] <= figure["max"], (key, label)
    collector = {label for key in ("collector_throughput", "collector_latency", "collector_wall")
                 for label in measures[key]["figures"]}  # CAF's collector step through both backends
    assert {"caf-hpc", "CAF's Local backend"} <= collector
    assert data["machine"]["logical_cores"] >= 1 and data["versions"]["distributed"]
    markdown = (tmp_path / "report.md").read_text()
    assert all(measure["title"] in markdown for measure in measures.values())
    assert "![the figures at a glance](figures.png)" in markdown
    assert (tmp_path / "figures.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_unknown_measure_is_named_with_the_choices():
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "latncy"], cwd=CHECKOUT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unknown measure(s) latncy; choose from cold_start" in done.stderr and "Traceback" not in done.stderr
    assert "(did you mean latency?)" in done.stderr
