"""Shared fixtures: CAF's own sequence of calls around a runner, on the real local default."""
from __future__ import annotations

import signal

import pytest

from caf_hpc import DaskAlgorithmsRunner
from caf_hpc.extras.standins.driver import run_algorithms
from tests.helpers.requirements import require_root


def pytest_configure(config):
    """The Ctrl-C tests start steering scripts as a terminal does, whose SIGINT is not ignored. A suite started
    in the background by a shell without job control (``... &`` in a script, ``nohup``) inherits SIGINT (and
    SIGQUIT) ignored, and every process it starts would inherit that too: an exec keeps an ignored signal
    ignored, while one with a handler starts with the default. So the suite handles SIGINT itself."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items):
    """Tests that take the ``root`` fixture are marked ``root``: ``-m "not root"`` runs without ROOT."""
    for item in items:
        if "root" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.root)


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


#: The runner's environment variables: none may leak in from the shell that runs the tests.
RUNNER_VARIABLES = ("CAF_HPC_SITE", "CAF_HPC_ADDRESS", "CAF_HPC_TIMEOUT", "CAF_HPC_RETRIES", "CAF_HPC_WORKER_WAIT",
                    "CAF_HPC_WORKERS", "CAF_HPC_DASHBOARD", "CAF_HPC_PRELOAD", "CAF_HPC_FORK_SERVER",
                    "CAF_HPC_WALLTIME_MARGIN")


@pytest.fixture
def isolated_sites(tmp_path, monkeypatch):
    """A machine of the test's own for site configs: HOME (so the user's sites, TLS files and job
    logs) under tmp_path, CAF_HPC_SITE_PATH an empty directory that is returned, no runner
    variables, and tmp_path as the working directory. Site lookup sees the shipped configs
    and what the test writes into the returned directory."""
    sites = tmp_path / "sites"
    sites.mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("CAF_HPC_SITE_PATH", str(sites))
    for variable in RUNNER_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    return sites


@pytest.fixture
def root():
    """ROOT, for tests of C++ algorithms (see ``helpers.requirements.require_root``)."""
    return require_root()
