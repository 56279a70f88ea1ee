"""Strategies reach the worker: by value from scripts, rebuilt from factories, or refused clearly."""
from __future__ import annotations

import threading

import pytest

from caf_hpc import ShippingError, runner_for
from caf_hpc.extras.standins.framework import Algorithm
from tests.helpers.scripted import ScriptedAlgorithm, ScriptedStrategy, ok


class HoldsALock(ScriptedAlgorithm):
    """Stands for a C++ CalibrationAlgorithm: it cannot be pickled."""

    def __init__(self, name, steps):
        super().__init__(name, steps)
        self.lock = threading.Lock()


def make_locked_algorithm():
    """The factory a user names: rebuilds the unpicklable algorithm on the worker."""
    return HoldsALock("Locked", [("print", "rebuilt on the worker"), ("results", 2), ("final", "COMPLETED")])


def _locked():
    algorithm = Algorithm(make_locked_algorithm())
    algorithm.strategy = ScriptedStrategy
    return algorithm


def test_unpicklable_algorithm_is_refused_before_anything_is_submitted(calibrate):
    outcome = calibrate([ok("Earlier"), _locked()])
    assert isinstance(outcome.error, ShippingError)
    message = str(outcome.error)
    assert "algorithm 'Locked' cannot be sent to a Dask worker" in message
    assert ".algorithm (TypeError: cannot pickle '_thread.lock' object)" in message
    assert "runner_for(factories={'Locked':" in message
    assert outcome.final_state == "FAILED"
    assert outcome.results == {}
    assert not (outcome.output_dir / "Earlier_stdout").exists()


def test_factory_rebuilds_an_unpicklable_algorithm_on_the_worker(calibrate):
    runner = runner_for(factories={"Locked": make_locked_algorithm})
    outcome = calibrate([_locked()], runner=runner)
    assert outcome.final_state == "COMPLETED", outcome.error
    assert len(outcome.results["Locked"]) == 2
    assert "rebuilt on the worker" in (outcome.output_dir / "Locked_stdout").read_text()


def test_factory_named_as_import_string_rebuilds_on_the_worker(calibrate):
    factories = {"Locked": "tests.steering.test_shipping:make_locked_algorithm"}
    outcome = calibrate([_locked()], runner=runner_for(factories=factories))
    assert outcome.final_state == "COMPLETED", outcome.error
    assert "rebuilt on the worker" in (outcome.output_dir / "Locked_stdout").read_text()


@pytest.mark.parametrize("spec, expected", [
    ("no_colon_here", "is not of the form 'package.module:function'"),
    ("caf_hpc_missing_module:make", "cannot import module 'caf_hpc_missing_module'"),
    ("caf_hpc.extras.demo.algorithms:no_such_function", "has no function 'no_such_function'"),
    ("__main__:make_locked_algorithm", "names the steering script itself, which a worker cannot import"),
])
def test_bad_factory_names_say_what_is_wrong(calibrate, spec, expected):
    outcome = calibrate([_locked()], runner=runner_for(factories={"Locked": spec}))
    assert isinstance(outcome.error, ShippingError)
    assert expected in str(outcome.error) and "'Locked'" in str(outcome.error)


def test_unpicklable_calibration_setting_is_named_not_blamed_on_an_algorithm(calibrate):
    outcome = calibrate([ok("Innocent")], database_chain=[threading.Lock()])
    assert isinstance(outcome.error, ShippingError)
    assert "the runner's database_chain (list), which every strategy of the calibration receives" in str(outcome.error)
