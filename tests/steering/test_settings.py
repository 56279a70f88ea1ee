"""Runner settings come from runner_for() and the environment; mistakes are named clearly."""
from __future__ import annotations

import time

import pytest

from caf_hpc import DaskAlgorithmsRunner, SettingsError, runner_for
from caf_hpc.steering.settings import resolve


def test_environment_fills_in_what_the_script_does_not_say():
    settings = resolve(environ={"CAF_HPC_WORKERS": "3", "CAF_HPC_TIMEOUT": "90", "CAF_HPC_RETRIES": "0"},
                       timeout=30)
    assert (settings.n_workers, settings.timeout, settings.retries) == (3, 30, 0)


def test_preload_comes_as_a_list_from_arguments_or_comma_separated_from_the_environment():
    assert resolve(environ={"CAF_HPC_PRELOAD": "ROOT, my_calibration.algorithms:declare"}).preload == \
        ("ROOT", "my_calibration.algorithms:declare")
    assert resolve(environ={"CAF_HPC_PRELOAD": "ROOT"}, preload=["basf2"]).preload == ("basf2",)


def test_explicit_address_replaces_a_site_from_the_environment():
    settings = resolve(environ={"CAF_HPC_SITE": "slurm"}, address="tcp://127.0.0.1:8786")
    assert (settings.address, settings.site) == ("tcp://127.0.0.1:8786", None)


def test_runner_for_returns_a_runner_class_bound_to_its_settings():
    runner = runner_for(address="tcp://127.0.0.1:8786", timeout=600)
    assert issubclass(runner, DaskAlgorithmsRunner)
    assert runner.settings().address == "tcp://127.0.0.1:8786"
    assert DaskAlgorithmsRunner.overrides == {}


@pytest.mark.parametrize("kwargs, environ, message", [
    ({"n_workers": 0}, {}, "n_workers must be a whole number of at least 1, got 0"),
    ({"timeout": "long"}, {}, "timeout must be a positive number of seconds, got 'long'"),
    ({"retries": -1}, {}, "retries must be a whole number of at least 0, got -1"),
    ({"workers": 2}, {}, "unknown runner setting(s) workers (did you mean 'n_workers'?); allowed: address,"),
    ({"factories": ["x"]}, {}, "factories must map algorithm names"),
    ({}, {"CAF_HPC_WORKERS": "two"}, "CAF_HPC_WORKERS='two': expected a whole number"),
    ({}, {"CAF_HPC_TIMEOUT": "1h"}, "CAF_HPC_TIMEOUT='1h': expected seconds as a number"),
    ({"address": "tcp://h:1"}, {"CAF_HPC_SITE": ""}, None),
    ({"address": "nonsense"}, {}, "address='nonsense' is not a Dask scheduler address; expected [tcp|tls]://HOST:PORT"),
    ({}, {"CAF_HPC_ADDRESS": "host:port"}, "address='host:port' is not a Dask scheduler address"),
    ({}, {"CAF_HPC_WORKERS": "0"}, "CAF_HPC_WORKERS='0': expected a whole number"),
    ({"preload": "ROOT"}, {}, "preload: expected a list of module names, got 'ROOT'; each entry is 'package.module'"),
    ({"preload": ["ROOT", "my calib:declare"]}, {},
     "preload: entry 'my calib:declare' is not 'package.module' to import it, or 'package.module:function'"),
    ({}, {"CAF_HPC_PRELOAD": "ROOT,my-calib"}, "preload: entry 'my-calib' is not 'package.module'"),
])
def test_bad_settings_name_the_setting_and_what_is_allowed(kwargs, environ, message):
    if message is None:
        resolve(environ=environ, **kwargs)
        return
    with pytest.raises(SettingsError) as caught:
        resolve(environ=environ, **kwargs)
    assert message in str(caught.value)


def test_unreachable_scheduler_is_named_with_where_to_fix_it(calibrate, monkeypatch):
    from caf_hpc.steering import clusters
    from tests.helpers.scripted import ok

    started = time.monotonic()
    outcome = calibrate([ok("Never")], runner=runner_for(address="tcp://127.0.0.1:9"))
    assert time.monotonic() - started < 5  # refused: at once, not after Dask's 30 s of retries
    assert isinstance(outcome.error, clusters.ClusterError)
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9: the connection was refused" in str(outcome.error)
    assert "CAF_HPC_ADDRESS" in str(outcome.error) and outcome.final_state == "FAILED"


def test_silent_scheduler_address_fails_after_the_connect_timeout_the_user_set(calibrate, monkeypatch):
    import dask.config

    from caf_hpc.steering import clusters
    from tests.helpers.scripted import ok

    monkeypatch.setattr(clusters.socket, "create_connection", _silent)
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        started = time.monotonic()
        outcome = calibrate([ok("Never")], runner=runner_for(address="tcp://127.0.0.1:8786"))
        elapsed = time.monotonic() - started
    assert 1.5 < elapsed < 10
    assert "no answer within 2 s (distributed.comm.timeouts.connect)" in str(outcome.error)


def _silent(address, timeout=None, **kwargs):
    """create_connection toward an address that never answers (nothing is sent anywhere)."""
    time.sleep(timeout)
    raise TimeoutError("timed out")
