"""Shared fixtures: CAF's own sequence of calls around a runner, on the real local default."""
from __future__ import annotations

import pytest

from caf_hpc import DaskAlgorithmsRunner
from caf_hpc.standins.driver import run_algorithms


@pytest.fixture(scope="session", autouse=True)
def _close_clusters():
    """The runner's shared clusters start on first use; close them when the session ends."""
    yield
    from caf_hpc import clusters

    clusters.close_all()


@pytest.fixture
def calibrate(tmp_path):
    """Runs ``algorithms`` through a runner exactly as CAF's CalibrationMachine does."""
    def _calibrate(algorithms, runner=DaskAlgorithmsRunner, name="cal", root=None, **kwargs):
        return run_algorithms(runner, name, algorithms, kwargs.pop("input_files", []), root or tmp_path, **kwargs)
    return _calibrate
