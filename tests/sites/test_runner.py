"""A site config reaching the runner: runner_for validates it, its runner section fills settings, build makes
the cluster."""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys

import pytest

from caf_hpc import runner_for
from caf_hpc.basf2_compat import RunnerError
from caf_hpc.sites import SiteConfigError, build_cluster, config, load_site
from caf_hpc.sites.jobscript import SCHEDULER_ADDRESS, WORKER_NAME, job_script
from caf_hpc.steering import clusters
from caf_hpc.steering.settings import SettingsError, resolve, resolve_for_run, resolve_site
from tests.helpers.batch_queues import jobs_named, wait_until_no_jobs
from tests.helpers.requirements import require_testbed
from tests.helpers.scripted import ok, scripted

pytestmark = pytest.mark.timeout(30)

SLURM = """\
scheduler: slurm
cluster: {queue: debug, cores: 1, memory: 1GB, walltime: "00:10:00", interface: lo,
          log_directory: ~/logs}
runner: {timeout: 1200, retries: 3, worker_wait: 45, preload: [ROOT]}
"""


@pytest.fixture(autouse=True)
def _sites(isolated_sites):
    """Every test here writes its site configs into the isolated site directory."""


@pytest.fixture
def slurm(monkeypatch, request):
    """The real Slurm of the testbed; returns a job name of this test's own, for finding its jobs in the queue."""
    for key, value in require_testbed("slurm").items():
        monkeypatch.setenv(key, value)
    return f"caf-{request.node.name[5:30]}-{os.getpid()}"


def site(tmp_path, text: str = SLURM, name: str = "mysite") -> str:
    (tmp_path / "sites" / f"{name}.yaml").write_text(text)  # the directory isolated_sites made
    return name


def test_runner_section_fills_settings_the_user_did_not_set(tmp_path):
    settings = resolve_site(resolve(site=site(tmp_path)))
    assert (settings.timeout, settings.retries, settings.worker_wait, settings.preload) == (1200, 3, 45, ("ROOT",))


def test_arguments_and_environment_win_over_the_runner_section(tmp_path, monkeypatch):
    monkeypatch.setenv("CAF_HPC_RETRIES", "1")  # the built-in default, but chosen explicitly
    monkeypatch.setenv("CAF_HPC_PRELOAD", "basf2")
    settings = resolve_site(resolve(site=site(tmp_path), timeout=60))
    assert (settings.timeout, settings.retries, settings.worker_wait, settings.preload) == (60, 1, 45, ("basf2",))


def test_an_argument_equal_to_the_default_still_wins_over_the_site(tmp_path):
    runner = runner_for(site(tmp_path), retries=1)  # the site says 3
    assert resolve_site(runner.settings()).retries == 1


def test_runner_for_validates_the_site_when_the_class_is_made(tmp_path):
    bad = site(tmp_path, SLURM.replace("memory: 1GB", "memroy: 1GB"), "bad")
    with pytest.raises(SiteConfigError, match=r"bad\.yaml: cluster\.memroy: unknown key; did you mean 'memory'\?"):
        runner_for(bad)
    with pytest.raises(SiteConfigError, match="placeholder '<PARTITION>'"):
        runner_for("slurm")


def test_runner_for_merges_cluster_overrides_into_the_site(tmp_path):
    name = site(tmp_path)
    runner = runner_for(name, cluster={"memory": "2GB", "job-extra-directives": ["--qos=high"]}, scale={"jobs": 2})
    bound = runner.settings().site
    assert bound.startswith(f"{name}+") and bound != name
    merged = load_site(bound)
    assert merged.cluster["memory"] == "2GB" and merged.cluster["queue"] == "debug"
    assert merged.cluster["job_extra_directives"] == ["--qos=high"] and merged.scale == {"jobs": 2}
    assert load_site(name).cluster["memory"] == "1GB"  # the file itself is unchanged
    assert runner_for(name, cluster={"memory": "2GB", "job-extra-directives": ["--qos=high"]},
                      scale={"jobs": 2}).settings().site == bound  # same overrides, same cluster


def test_runner_for_override_mistakes_are_reported_now(tmp_path):
    name = site(tmp_path)
    with pytest.raises(SiteConfigError, match=r"\(with runner_for overrides\): cluster\.memroy: unknown key"):
        runner_for(name, cluster={"memroy": "2GB"})
    with pytest.raises(SettingsError, match="cluster= override parts of a site config; name a site too"):
        runner_for(cluster={"memory": "2GB"})


def test_site_configs_do_not_import_the_runners_clusters():
    """One direction only: the steering side builds a site's cluster; sites know nothing of clusters."""
    code = "import sys, caf_hpc.sites; print('caf_hpc.steering.clusters' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout == "False\n"


def test_local_site_values_enter_the_settings_and_build_the_local_cluster(tmp_path, monkeypatch):
    seen = []

    def local_cluster(settings):
        seen.append(settings)
        return "cluster"

    monkeypatch.setattr(clusters, "local_cluster", local_cluster)
    name = site(tmp_path, "scheduler: local\ncluster: {n_workers: 3, dashboard_address: '127.0.0.1:8799'}\n", "here")
    settings = resolve_for_run({"site": name})
    assert (settings.n_workers, settings.dashboard_address, settings.site_config.name) == (3, "127.0.0.1:8799", name)
    assert clusters._make_cluster(settings) == "cluster" and seen == [settings]
    assert resolve_for_run({"site": name, "n_workers": 2}).n_workers == 2


@pytest.mark.batch
def test_batch_cluster_submits_exactly_the_printed_job_script(tmp_path, slurm):
    """A real SLURMCluster (scheduler only, no jobs) with TLS: its job script is what `job-script` prints."""
    name = site(tmp_path, SLURM.replace("log_directory:", f"job_name: {slurm}, log_directory:")
                + "scale: {minimum_jobs: 0, maximum_jobs: 1}\n")  # adaptive, and no work: no job
    cluster = build_cluster(load_site(name))
    try:
        address = cluster.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        assert cluster.security.require_encryption is True
        assert cluster.dashboard_link.startswith("http://127.0.0.1:")
        printed = job_script(load_site(name)).replace(SCHEDULER_ADDRESS.format(protocol="tls"), address)
        assert cluster.job_script() == printed
        assert f"--name {WORKER_NAME}" in printed and "--tls-key" in printed
        assert f"#SBATCH -J {slurm}" in printed
        assert not cluster.workers  # nothing was submitted ...
        assert jobs_named("slurm", slurm) == []  # ... and the real Slurm has no job of this cluster
    finally:
        cluster.close()


@pytest.mark.batch
def test_adaptive_scale_and_submit_extras_reach_the_cluster(tmp_path, slurm):
    text = SLURM.replace("log_directory: ~/logs}",
                         f"log_directory: ~/logs, job_name: {slurm}, submit_command_extra: ['--hold']}}")
    name = site(tmp_path, text + "scale: {minimum_jobs: 0, maximum_jobs: 2}\nsecurity: {tls: false}\n")
    cluster = build_cluster(load_site(name))
    try:
        assert cluster.scheduler.address.startswith("tcp://")
        assert cluster.job_cls.submit_command == "sbatch --hold"
        assert (cluster._adaptive.minimum, cluster._adaptive.maximum) == (0, 2)
        assert jobs_named("slurm", slurm) == []  # no work, so adaptive scaling submitted nothing
    finally:
        cluster.close()


def test_a_missing_submit_command_is_reported_before_the_cluster_starts(tmp_path, monkeypatch):
    empty = tmp_path / "bin"  # a PATH with no batch commands on it
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(SiteConfigError, match="mysite.yaml: sbatch not found on PATH: this machine cannot submit "
                                              "slurm jobs"):
        build_cluster(load_site(site(tmp_path)))


@pytest.mark.batch
def test_a_grid_engine_qsub_is_not_used_for_pbs(monkeypatch):
    for key, value in require_testbed("sge").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # where Grid Engine's qsub is, without the PBS testbed's directory
    qsub = shutil.which("qsub")
    version = subprocess.run([qsub, "-help"], capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    assert version.startswith("SGE ")  # e.g. "SGE 8.1.9", Grid Engine's own first line of `qsub -help`
    with pytest.raises(SiteConfigError, match=re.escape(f"the qsub on PATH ({qsub}) is Grid Engine's ({version}), "
                                                        "not PBS's; put the PBS commands first on PATH")):
        build_cluster(load_site("localhost-pbs"))


@pytest.fixture
def site_reads(monkeypatch):
    """Every read of a site file from now on: the file's one loader (``config.read_yaml``), counted and called."""
    reads = []
    loader = config.read_yaml

    def counted(path, source):
        reads.append(str(path))
        return loader(path, source)

    monkeypatch.setattr(config, "read_yaml", counted)
    return reads


class _Lines(logging.Handler):
    """The runner's log lines, on its own logger (pytest's capture of the root may stop at ERROR once a batch
    cluster has started)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def runner_lines(monkeypatch, request):
    lines = _Lines()
    logger = logging.getLogger("caf_hpc")
    monkeypatch.setattr(logger, "handlers", [*logger.handlers, lines])
    request.addfinalizer(lambda level=logger.level: logger.setLevel(level))
    logger.setLevel(logging.INFO)
    return lines.lines


@pytest.mark.timeout(120)
def test_a_run_on_a_local_site_reads_the_site_file_once(tmp_path, calibrate, site_reads):
    """Its start, its cluster, its progress lines and its failure all take the site the run read."""
    runner = runner_for(site(tmp_path, "scheduler: local\ncluster: {n_workers: 1}\nrunner: {retries: 0}\n", "here"))
    site_reads.clear()  # runner_for read it to check it; a run reads it again, once, for what changed since
    try:
        outcome = calibrate([ok("First"), scripted("Broken", ("raise", "no constants"))], runner=runner)
        in_run = list(site_reads)
    finally:
        clusters.close(runner.settings())
    assert outcome.final_state == "FAILED" and isinstance(outcome.error, RunnerError), outcome
    assert len(in_run) == 1, in_run


@pytest.mark.batch
@pytest.mark.timeout(120)
def test_a_run_that_waits_for_a_batch_job_and_fails_reads_the_site_file_once(tmp_path, calibrate, slurm, site_reads,
                                                                              runner_lines):
    """On the real Slurm, a job held in the queue: the run's start, its waiting notes (which ask the batch system
    for its jobs' states) and its error naming the site all take the site the run read."""
    held = SLURM.replace("log_directory:", f"job_name: {slurm}, job_extra_directives: [--hold], log_directory:")
    runner = runner_for(site(tmp_path, held.replace("worker_wait: 45", "worker_wait: 5"), "held"))
    site_reads.clear()
    try:
        outcome = calibrate([ok("Patient")], runner=runner)
        in_run = list(site_reads)
    finally:
        clusters.close(runner.settings())
        assert wait_until_no_jobs("slurm", slurm) == []
    assert isinstance(outcome.error, RunnerError), outcome
    message = str(outcome.error)
    assert "found no worker to run it within 5 s (worker_wait) on site 'held' (slurm, queue debug" in message
    waiting = [line for line in runner_lines if " waiting " in line]
    assert any(": 1 pending" in line and "site 'held'" in line for line in waiting), runner_lines
    assert len(in_run) == 1, in_run
