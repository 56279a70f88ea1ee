"""Walltime-aware placement and drain on the real Slurm, with batch jobs of one minute.

Slurm counts time limits in whole minutes and checks them about every 30 s, so a job of
``00:01:00`` is killed 60 to 90 s after it started. Each test prints what it measured
(``-s`` shows it).
"""
from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import pytest

from tests.helpers.scripted import ok, scripted

pytestmark = [pytest.mark.batch, pytest.mark.timeout(300)]

WALLTIME = "00:01:00"


@pytest.fixture
def slurm(slurm_runners):
    """A Slurm cluster of one-minute jobs of this test's own, closed afterwards with no job left."""
    def make(jobs=1, **settings):
        return slurm_runners(jobs, cluster=dict(settings.pop("cluster", {}), walltime=WALLTIME), **settings)

    return make


def _attempts(output_dir: Path) -> list:
    record = json.loads((output_dir / "caf-hpc-run.json").read_text())
    return [dict(attempt, algorithm=strategy["algorithm"]) for strategy in record["strategies"]
            for attempt in strategy["attempts"]]


class _Said(logging.Handler):
    """What the runner says on the ``caf_hpc`` logger."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


@pytest.fixture
def said():
    handler = _Said()
    logger = logging.getLogger("caf_hpc")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def test_a_strategy_killed_at_the_walltime_runs_again_without_using_up_retries(slurm, calibrate, tmp_path, said):
    long = scripted("Long", ("sleep_first_time", str(tmp_path / "slept"), 200), ("results", 2), ("final", "COMPLETED"))
    started = time.monotonic()
    outcome = calibrate([long, ok("After")], runner=slurm(retries=0, walltime_margin=15))
    took = time.monotonic() - started
    assert outcome.final_state == "COMPLETED", outcome.error
    assert len(outcome.results["Long"]) == 2 and len(outcome.results["After"]) == 1
    # the loss is told by the scheduler's removal of the worker, or by the end of the killed attempt, whichever
    # comes first: either way the warning names the walltime
    warned = [line for line in said if line.startswith("WARNING") and "Long" in line]
    assert any("at its batch job's walltime" in text and "does not count toward retries" in text for text in warned), \
        said
    attempts = [a for a in _attempts(outcome.output_dir) if a["algorithm"] == "Long"]
    assert [a["outcome"] for a in attempts] == ["lost", "ended"]
    assert attempts[0].get("lost_to") == "walltime"
    assert attempts[0]["job_id"] != attempts[1]["job_id"]  # the replacement job ran it
    print(f"\nkilled after {attempts[0]['finished'] - attempts[0]['started']:.1f} s in job {attempts[0]['job_id']}; "
          f"re-run started {attempts[1]['started'] - attempts[0]['finished']:.1f} s after the loss in job "
          f"{attempts[1]['job_id']}; whole run {took:.1f} s")


def test_workers_drain_before_their_end_and_are_replaced_so_no_strategy_is_cut(slurm, calibrate, tmp_path):
    names = [f"Step{i}" for i in range(12)]
    algorithms = [scripted(name, ("sleep", 5), ("results", 1), ("final", "COMPLETED")) for name in names]
    runner = slurm(retries=0, walltime_margin=20, expected_durations={name: 6 for name in names})
    outcome = calibrate(algorithms, runner=runner)
    assert outcome.final_state == "COMPLETED", outcome.error
    attempts = _attempts(outcome.output_dir)
    assert [a["outcome"] for a in attempts] == ["ended"] * len(names)  # nothing lost, nothing cut
    jobs = list(dict.fromkeys(a["job_id"] for a in attempts))
    assert len(jobs) >= 2, f"12 strategies of 5 s fitted in one job of a minute: {jobs}"
    first_job_end = max(a["finished"] for a in attempts if a["job_id"] == jobs[0])
    second_job_start = min(a["started"] for a in attempts if a["job_id"] == jobs[1])
    logs = Path(runner.settings().site_config.cluster["log_directory"]).expanduser()
    lines = [line for path in logs.glob(f"*{jobs[0]}*") for line in path.read_text().splitlines()]
    left = [float(m.group(1)) for line in lines for m in [re.search(r"idle with (\d+) s left in the batch job", line)]
            if m]
    assert left, f"the first job's worker did not say it left before its end: {logs}"
    assert left[0] > 0
    print(f"\njobs {jobs}; the first job's worker left with {left[0]:.0f} s to go; its last strategy ended "
          f"{second_job_start - first_job_end:.1f} s before the first one on the replacement started")
