"""The example steering script (``examples/calibration.py``), run as a user runs it: copied with its
``my_calibration.py`` into an empty directory, unchanged, as a script of its own (here without basf2,
on caf-hpc's stand-ins of CAF; with basf2 the same script uses CAF's own classes)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.timeout(240)
def test_the_example_runs_its_collector_jobs_and_two_algorithms_unchanged(tmp_path):
    for name in ("calibration.py", "my_calibration.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    done = subprocess.run([sys.executable, "calibration.py", "--output", "out"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = tmp_path / "out" / "calibration_results" / "ExampleCalibration"
    assert f"ExampleCalibration: completed, payloads in {results / 'outputdb'}" in done.stdout
    collector = results / "0" / "collector_output" / "default"
    assert sorted(p.name for p in collector.iterdir() if p.is_dir()) == ["0", "1"]  # 10 runs, 5 per collector job
    assert (collector / "caf-hpc-run.json").exists()  # the collector job's run record
    assert all((collector / job / "CollectorOutput.json").exists() for job in ("0", "1"))
    payloads = [line.split()[0] for line in (results / "outputdb" / "database.txt").read_text().splitlines()]
    assert payloads == ["dbstore/Pedestals"] * 10 + ["dbstore/Gains"]  # run by run, then one for all runs
    from caf_hpc.extras.demo.algorithms import check_against_truth

    residuals = check_against_truth(results / "outputdb", tmp_path / "out" / "input" / "raw" / "truth.json")
    assert residuals["Pedestals"] < 0.5 and residuals["Gains"] < 0.02
