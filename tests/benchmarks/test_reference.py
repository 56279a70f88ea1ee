"""The baseline the suite measures caf-hpc against keeps CAF's reference contract: in order, stop at FAILED."""
from __future__ import annotations

import pytest

from benchmarks.reference import reference
from caf_hpc.basf2_compat import RunnerError
from tests.helpers.scripted import scripted

pytestmark = pytest.mark.timeout(60)


def test_the_reference_loop_collects_every_result_in_order(calibrate):
    outcome = calibrate([scripted("First", ("results", 300), ("final", "COMPLETED")),
                         scripted("Second", ("results", 2), ("final", "COMPLETED"))],
                        runner=reference(0.001))
    assert outcome.error is None and outcome.final_state == "COMPLETED"
    assert len(outcome.results["First"]) == 300 and len(outcome.results["Second"]) == 2


def test_the_reference_loop_stops_at_the_first_failed_strategy(calibrate):
    outcome = calibrate([scripted("Fails", ("final", "FAILED")), scripted("Never", ("final", "COMPLETED"))],
                        runner=reference(0.001))
    assert outcome.final_state == "FAILED" and "Never" not in outcome.results


def test_the_reference_loop_raises_for_a_child_without_a_final_state(calibrate):
    outcome = calibrate([scripted("Silent", ("results", 1))], runner=reference(0.001))
    assert isinstance(outcome.error, RunnerError) and "Silent" in str(outcome.error)

