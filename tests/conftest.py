"""Shared fixtures: CAF's own sequence of calls around a runner, on the real local default."""
from __future__ import annotations

import pytest

from caf_hpc import DaskAlgorithmsRunner
from caf_hpc.extras.standins.driver import run_algorithms


@pytest.fixture(scope="session", autouse=True)
def _close_clusters():
    """The runner's shared clusters start on first use; close them when the session ends."""
    yield
    from caf_hpc.steering import clusters

    clusters.close_all()


@pytest.fixture
def calibrate(tmp_path):
    """Runs ``algorithms`` through a runner exactly as CAF's CalibrationMachine does."""
    def _calibrate(algorithms, runner=DaskAlgorithmsRunner, name="cal", root=None, **kwargs):
        return run_algorithms(runner, name, algorithms, kwargs.pop("input_files", []), root or tmp_path, **kwargs)
    return _calibrate


@pytest.fixture
def isolated_site_lookup(tmp_path, monkeypatch):
    """Site lookup that sees the shipped configs only: HOME, XDG_CONFIG_HOME and CAF_HPC_SITE_PATH cleared."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("CAF_HPC_SITE_PATH", raising=False)
    monkeypatch.chdir(tmp_path)


def require_testbed(name: str) -> dict:
    """The environment for submitting to testbed ``name``; skips (or, in CI, fails) when it is down.

    ``tests/run.sh`` starts the testbeds and sets CAF_HPC_REQUIRE_BATCH=1, so that a batch
    test can never pass by being skipped there.
    """
    import os

    from caf_hpc.extras import testbed

    if not testbed.is_up(name):
        reason = f"the {name} testbed is down: start it with `caf-hpc testbed up {name}` (as root)"
        if os.environ.get("CAF_HPC_REQUIRE_BATCH") == "1":
            pytest.fail(f"{reason}; CAF_HPC_REQUIRE_BATCH=1 forbids skipping batch tests")
        pytest.skip(reason)
    return testbed.environment(name)


def require_root():
    """ROOT's Python module; skips (or, in CI, fails) where ROOT is not installed.

    ``tests/run.sh`` installs the ``root`` extra and sets CAF_HPC_REQUIRE_ROOT=1, so that
    the C++ tests can never pass by being skipped there.
    """
    import os

    from caf_hpc.extras.standins import cpp

    if not cpp.available():
        reason = "ROOT is not installed: pip install 'caf-hpc[root]'"
        if os.environ.get("CAF_HPC_REQUIRE_ROOT") == "1":
            pytest.fail(f"{reason}; CAF_HPC_REQUIRE_ROOT=1 forbids skipping the C++ tests")
        pytest.skip(reason)
    return cpp.import_root()


@pytest.fixture
def root():
    """ROOT, for tests of C++ algorithms (see ``require_root``)."""
    return require_root()
