"""The worker image from the Containerfile, built with podman and run for real: alone, and as every
worker of the testbed's Slurm (site ``localhost-slurm-podman``)."""
from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from caf_hpc import runner_for
from caf_hpc.extras.demo.run import run_demo
from caf_hpc.extras.testbed import image as worker_image
from caf_hpc.steering import clusters
from tests.helpers.batch_queues import wait_until_no_jobs
from tests.helpers.requirements import require_testbed
from tests.helpers.scripted import scripted

pytestmark = [pytest.mark.batch, pytest.mark.timeout(300)]

REPOSITORY = Path(__file__).resolve().parents[2]
IMAGE = worker_image.IMAGE  # the image site-configs/localhost-slurm-podman.yaml runs
SITE = "localhost-slurm-podman"


def podman(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture(scope="session")
def image(tmp_path_factory):
    """The image, built once per session from a clean context: what .containerignore lets through
    of this checkout, plus a wheelhouse (no package index is needed inside the build)."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in require_testbed("podman").items():
            patch.setenv(key, value)
        context = worker_image.stage(REPOSITORY, tmp_path_factory.mktemp("image-context"))
        seconds, _ = worker_image.build(context)
        print(f"\nimage {IMAGE} built in {seconds:.1f} s")
        yield {"context": context, "seconds": seconds, "environment": dict(os.environ)}


def test_image_runs_caf_hpc_and_its_demo(image, tmp_path):
    env = image["environment"]
    version = podman("run", "--rm", IMAGE, env=env)
    assert version.returncode == 0 and version.stdout.startswith("caf-hpc 0.1.0 (Python 3.11"), version.stderr
    user = podman("run", "--rm", IMAGE, "id", "-u", env=env)
    assert user.stdout.strip() == "1000"  # not root
    demo = podman("run", "--rm", "--network", "host", "--user", "0:0", "-v", f"{tmp_path}:{tmp_path}", IMAGE,
                  "caf-hpc", "demo", "--output", str(tmp_path / "demo"), "--runs", "3", env=env, timeout=180)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "final state: COMPLETED" in demo.stdout
    assert (tmp_path / "demo" / "demo" / "0" / "algorithm_output" / "outputdb" / "database.txt").exists()
    # no ROOT in the image: the Python algorithms, and their collector output in JSON
    assert (tmp_path / "demo" / "demo" / "0" / "collector_output" / "default" / "0" / "CollectorOutput.json").exists()


def test_a_second_build_reuses_the_cache(image):
    seconds, output = worker_image.build(image["context"])
    print(f"\ncached build of {IMAGE}: {seconds:.1f} s")
    assert "Using cache" in output and "pip install" not in output.split("Using cache")[-1]


@pytest.fixture
def slurm_in_containers(image, isolated_sites, monkeypatch, request):
    """Slurm and podman settings in this process (the jobs inherit them), a job name of this test's own;
    afterwards: no job of it in the queue and no container of the image left running."""
    for key, value in {**require_testbed("slurm"), **image["environment"]}.items():
        monkeypatch.setenv(key, value)
    job_name = f"caf-ctr-{request.node.name[5:20]}"
    runner = runner_for(SITE, cluster={"job_name": job_name}, scale={"jobs": 1})
    yield runner
    clusters.close(runner.settings())
    assert wait_until_no_jobs("slurm", job_name, seconds=30) == []
    deadline = time.monotonic() + 30
    while podman("ps", "-q", "--filter", f"ancestor={IMAGE}").stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert podman("ps", "-q", "--filter", f"ancestor={IMAGE}").stdout.strip() == ""


def test_demo_on_slurm_runs_every_worker_inside_the_container(slurm_in_containers, calibrate, tmp_path, caplog):
    runner = slurm_in_containers
    report = run_demo(runner, tmp_path / "demo", runs=3)  # under the working directory, which the container binds
    outcome = report.outcome
    assert outcome.final_state == "COMPLETED", outcome.error
    assert report.residuals["Pedestals"] < 0.5 and report.residuals["TimeOffsets"] < 0.2
    assert report.log_file("GainCalibration").exists()  # written on the host path, from inside the container
    assert clusters.client_for(runner.settings()).scheduler.address.startswith("tls://")  # TLS across the boundary
    # How the test knows: podman puts /run/.containerenv into every container, and the strategy's
    # Python is the image's (/opt/caf-hpc); the host has neither.
    assert not Path("/run/.containerenv").exists() and not Path("/opt/caf-hpc").exists()
    probe = scripted("WhereAmI", ("print_file", "/run/.containerenv"), ("report_identity",),
                     ("results", 1), ("final", "COMPLETED"))
    caplog.set_level(logging.INFO, logger="caf_hpc")
    # under the demo's directory: CAF worked in it when the cluster started, and the container binds that directory
    outcome = calibrate([probe], runner=runner, root=tmp_path / "demo" / "probe")
    assert outcome.final_state == "COMPLETED", outcome.error
    log = (outcome.output_dir / "WhereAmI_stdout").read_text()
    assert "/run/.containerenv: present" in log and "python=/opt/caf-hpc" in log, log
    job = re.search(r"SLURM_JOB_ID=(\d+)", log)
    assert job, log  # passed into the container: the runner's messages can name the batch job
    assert f"batch job {job.group(1)}" in caplog.text
