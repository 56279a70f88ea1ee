"""The README's steering script without basf2 ("Without basf2"): exactly its lines, run as a user runs them."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[3] / "README.md"


def readme_example() -> str:
    """The one Python block of the README's "Without basf2" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Without basf2\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, flags=re.S | re.M)
    assert len(blocks) == 1, "the section shows one script"
    return blocks[0]


@pytest.mark.timeout(120)
def test_the_readme_steering_script_runs_as_shown(tmp_path):
    (tmp_path / "my_calibration.py").write_text(readme_example())
    run = subprocess.run([sys.executable, "my_calibration.py"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=100)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == "COMPLETED [0, 0, 0]"  # what the README says it prints
    output = tmp_path / "calibration" / "0" / "algorithm_output"
    database = (output / "outputdb" / "database.txt").read_text()
    assert database.splitlines() == ["dbstore/Means 1 1,1,1,1", "dbstore/Means 2 1,2,1,2", "dbstore/Means 3 1,3,1,3"]
    assert database in run.stdout
    means = [json.loads((output / "outputdb" / f"dbstore_Means_rev_{rev}.json").read_text())["mean"]
             for rev in (1, 2, 3)]
    assert means == [1.5, 2.5, 3.5]  # the mean of [run, run + 1]
    assert (output / "MeanCalibration_stdout").exists()
