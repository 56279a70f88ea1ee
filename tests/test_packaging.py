"""What a regular (not editable) install ships: the C++ headers, the testbed scripts, the site configs."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
SHIPPED = ("caf_hpc/extras/standins/include/CalibrationAlgorithm.h", "caf_hpc/extras/demo/include/DemoAlgorithms.h",
           "caf_hpc/extras/testbed/slurm.sh", "caf_hpc/extras/testbed/common.sh", "caf_hpc/site-configs/local.yaml",
           "caf_hpc/site-configs/localhost-slurm.yaml", "caf_hpc/child/__main__.py")


@pytest.mark.timeout(300)
def test_the_wheel_carries_every_file_the_package_reads_at_run_time(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(REPOSITORY)],
                   check=True, timeout=280, capture_output=True)
    (wheel,) = tmp_path.glob("caf_hpc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert [name for name in SHIPPED if name not in names] == []
    assert wheel.name.startswith("caf_hpc-0.1.0-")  # the version, read from caf_hpc.__version__


def test_version_names_caf_hpc_and_what_it_runs_on():
    result = subprocess.run([sys.executable, "-m", "caf_hpc.cli", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("caf-hpc 0.1.0 (Python ")
    assert "distributed " in result.stdout and "dask-jobqueue " in result.stdout
