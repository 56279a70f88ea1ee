"""`caf-hpc demo`, the main job: a real calibration on the local default, and fail-fast."""
from __future__ import annotations

from caf_hpc.cli import main


def test_demo_calibrates_three_dependent_algorithms(tmp_path, capsys):
    code = main(["demo", "--output", str(tmp_path / "demo"), "--runs", "6"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "final state: COMPLETED" in out
    assert "(1,1) - (1,6)  6 runs, one IoV each" in out and "0 ok" in out
    database = (tmp_path / "demo" / "calibration" / "0" / "algorithm_output" / "outputdb" / "database.txt")
    assert [line.split()[0] for line in database.read_text().splitlines()][-2:] == [
        "dbstore/Gains", "dbstore/TimeOffsets"]
    assert "Pedestals    missing" not in out and "wall time" in out


def test_demo_fail_shows_fail_fast_and_exits_non_zero(tmp_path, capsys):
    code = main(["demo", "--output", str(tmp_path / "demo"), "--runs", "3", "--fail", "GainCalibration"])
    out = capsys.readouterr().out
    assert code == 1
    assert "GainCalibration        (1,1) - (2,3)" in out and "3 failure" in out
    assert "TimeOffsetCalibration  (not run: an earlier algorithm failed)" in out
    assert "final state: FAILED" in out
