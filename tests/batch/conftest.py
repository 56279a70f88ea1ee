"""Fixtures of the tests on the testbed's real batch systems."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from caf_hpc import runner_for
from caf_hpc.steering import clusters
from tests.helpers.batch_queues import wait_until_no_jobs
from tests.helpers.requirements import require_testbed


@pytest.fixture
def slurm_runners(isolated_sites: Any, monkeypatch: pytest.MonkeyPatch,
                  request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """``make(jobs, cluster={...}, **settings)``: runners on the testbed's Slurm whose jobs are this test's own
    (named after it), closed afterwards with no job left."""
    for key, value in require_testbed("slurm").items():
        monkeypatch.setenv(key, value)
    job_name = f"caf-{request.node.name[5:30]}"
    runners = []

    def make(jobs: int, **settings: Any) -> Any:
        cluster = dict(settings.pop("cluster", {}), job_name=job_name)
        runner = runner_for("localhost-slurm", cluster=cluster, scale={"jobs": jobs}, **settings)
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        clusters.close(runner.settings())
    assert wait_until_no_jobs("slurm", job_name) == []
