"""The stand-in ``CalibrationAlgorithm``: what it refuses, as the runner's messages need it to."""
from __future__ import annotations

import pytest

from caf_hpc.extras.standins.calibration_algorithm import CalibrationAlgorithm
from caf_hpc.extras.standins.conditions import conditions
from caf_hpc.extras.standins.utils import AlgResult, IoV

pytestmark = [pytest.mark.timeout(20), pytest.mark.usefixtures("fresh_conditions")]


@pytest.fixture
def fresh_conditions():
    """The stand-in's conditions are one object per process: as they were before, after the test."""
    conditions.reset()
    yield
    conditions.reset()


class _Saves(CalibrationAlgorithm):
    def calibrate(self) -> AlgResult:
        self.saveCalibration({"x": 1}, "pedestal")
        return AlgResult.ok


def test_a_payload_saved_outside_an_execution_without_an_iov_is_refused_when_saved(tmp_path):
    """No execution, no IoV: refused at once, naming the payload, not at commit with a payload file half written."""
    conditions.expert_settings(save_payloads=tmp_path / "database.txt")
    algorithm = _Saves()
    with pytest.raises(ValueError, match="'pedestal'.*iov="):
        algorithm.saveCalibration({"x": 1}, "pedestal")
    assert algorithm.commit() == []
    assert not any(tmp_path.iterdir())
    algorithm.saveCalibration({"x": 1}, "pedestal", IoV(0, 1, 0, 1))
    assert algorithm.commit() == [("pedestal", 1)]


def test_a_payload_saved_in_an_execution_takes_the_executions_iov(tmp_path):
    conditions.expert_settings(save_payloads=tmp_path / "database.txt")
    algorithm = _Saves()
    assert algorithm.execute([(0, 3), (0, 4)]) == int(AlgResult.ok)
    assert algorithm.commit() == [("pedestal", 1)]
    assert (tmp_path / "database.txt").read_text() == "dbstore/pedestal 1 0,3,0,4\n"
