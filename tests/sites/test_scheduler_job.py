"""``dask_scheduler``: its validation, the scheduler's job script, and what the job runs (no batch system needed;
the scheduler in a real Slurm job is ``tests/batch/test_scheduler_job.py``)."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time

import pytest

from caf_hpc.sites import SiteConfigError, load_site
from caf_hpc.sites import scheduler_in_job as in_job
from caf_hpc.sites.build import cluster_arguments
from caf_hpc.sites.scheduler_job import SchedulerJob, plan_for, read_address

pytestmark = [pytest.mark.usefixtures("isolated_sites"), pytest.mark.timeout(60)]

SLURM = """\
scheduler: slurm
cluster:
  queue: debug
  cores: 4
  memory: 8GB
  walltime: "01:00:00"
  interface: lo
  log_directory: ~/logs
"""


def _load(tmp_path, text: str):
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path, load_site(str(path))


def _refused(tmp_path, text: str) -> str:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(SiteConfigError) as caught:
        load_site(str(path))
    return str(caught.value).replace(str(path), "{file}")


def test_placement_job_with_defaults(tmp_path):
    _, site = _load(tmp_path, SLURM + "dask_scheduler: {placement: job}\n")
    assert site.scheduler_in_job
    assert site.dask_scheduler == {"placement": "job", "start_wait": 300, "client_timeout": 120,
                                   "directory": os.path.join("~", ".caf-hpc", "schedulers", "site")}
    assert site.as_dict()["dask_scheduler"]["placement"] == "job"


def test_without_the_section_the_scheduler_stays_in_the_steering_process(tmp_path):
    _, site = _load(tmp_path, SLURM)
    assert not site.scheduler_in_job and site.dask_scheduler == {}
    _, site = _load(tmp_path, SLURM + "dask_scheduler: {placement: submit-host}\n")
    assert not site.scheduler_in_job


BAD = [
    ("unknown placement with a suggestion", "dask_scheduler: {placement: jbo}\n",
     "{file}: dask_scheduler.placement: unknown placement 'jbo'; did you mean 'job'? Allowed: submit-host, job"),
    ("unknown placement", "dask_scheduler: {placement: login-node}\n",
     "{file}: dask_scheduler.placement: unknown placement 'login-node'. Allowed: submit-host, job"),
    ("unknown key with a suggestion", "dask_scheduler: {placement: job, start_wiat: 60}\n",
     "{file}: dask_scheduler.start_wiat: unknown key; did you mean 'start_wait'? Allowed keys: placement, job, "
     "start_wait, client_timeout, directory"),
    ("wait not seconds", "dask_scheduler: {placement: job, client_timeout: soon}\n",
     "{file}: dask_scheduler.client_timeout: expected a positive number of seconds, got 'soon'"),
    ("job key that is a worker's", "dask_scheduler: {placement: job, job: {worker_extra_args: ['--lifetime', '1h']}}\n",
     "{file}: dask_scheduler.job.worker_extra_args: not for the scheduler's job: they are the workers' arguments; "
     "set the scheduler's in cluster.scheduler_options"),
    ("job walltime checked as slurm's", "dask_scheduler: {placement: job, job: {walltime: 'a day'}}\n",
     "{file}: dask_scheduler.job.walltime: 'a day' is not a valid walltime for slurm; write MM, MM:SS, HH:MM:SS, "
     "D-HH, D-HH:MM or D-HH:MM:SS"),
    ("job memory checked", "dask_scheduler: {placement: job, job: {memory: lots}}\n",
     "{file}: dask_scheduler.job.memory: 'lots' is not an amount of memory; write e.g. '4GB' or '3.5GiB'"),
    ("directory on a node-local file system", "dask_scheduler: {placement: job, directory: /tmp/schedulers}\n",
     "{file}: dask_scheduler.directory: /tmp/schedulers is on a node-local file system; the scheduler's job writes "
     "its address there for this host to read: give a directory on a shared file system"),
    ("not a mapping", "dask_scheduler: job\n",
     "{file}: dask_scheduler: expected a mapping of keys to values, got text"),
]


@pytest.mark.parametrize("extra, message", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_dask_scheduler_section_is_refused_with_its_message(tmp_path, extra, message):
    assert _refused(tmp_path, SLURM + extra) == message


def test_unknown_job_key_lists_the_keys_that_size_and_place_a_job(tmp_path):
    message = _refused(tmp_path, SLURM + "dask_scheduler: {placement: job, job: {waltime: '10:00:00'}}\n")
    assert message.startswith("{file}: dask_scheduler.job.waltime: unknown key; did you mean 'walltime'? "
                              "The scheduler's job takes the cluster keys of slurm that size and place a job: ")
    assert "queue" in message and "processes" not in message and "worker_extra_args" not in message


def test_scheduler_options_a_scheduler_in_a_job_cannot_take_are_refused(tmp_path):
    text = SLURM + "  scheduler_options: {worker_ttl: '5 minutes', jupyter: true}\ndask_scheduler: {placement: job}\n"
    message = _refused(tmp_path, text)
    assert message.startswith("{file}: cluster.scheduler_options.jupyter: a scheduler in a batch job "
                              "(dask_scheduler.placement: job) cannot be given it")
    assert "worker_ttl" not in message.split(":")[1]  # a Dask setting: allowed
    _load(tmp_path, SLURM + "  scheduler_options: {jupyter: true}\n")  # in the steering process it is fine


def test_local_has_no_dask_scheduler_section(tmp_path):
    assert _refused(tmp_path, "scheduler: local\ndask_scheduler: {placement: job}\n") == \
        "{file}: dask_scheduler: does not apply to local (its scheduler is a process on this machine)"


def test_runner_for_overrides_the_placement(tmp_path):
    from caf_hpc import runner_for

    runner = runner_for("localhost-slurm", dask_scheduler={"placement": "job", "start_wait": 60})
    site = load_site(runner.settings().site)
    assert site.scheduler_in_job and site.dask_scheduler["start_wait"] == 60


@pytest.mark.parametrize("name", ["localhost-slurm", "localhost-pbs", "localhost-sge"])
def test_scheduler_job_script_is_the_sites_job_running_the_scheduler(tmp_path, name):
    """The site's directives (``job`` replacing the workers' values), its logs, and caf-hpc's scheduler command with
    the TLS files, the interface and the scheduler's settings; no worker argument."""
    from caf_hpc.sites.security import security_for

    site = load_site(name, {"dask_scheduler": {"placement": "job", "job": {"walltime": "02:00:00"}},
                            "cluster": {"job_name": "cal", "worker_extra_args": ["--lifetime", "1h"]}})
    plan = plan_for(site, security_for(site.security["directory"]), cluster_arguments)
    job = SchedulerJob(plan, protocol="tls://", security=security_for(site.security["directory"]),
                       interface="lo", dashboard_address="127.0.0.1:0", allowed_failures=4, worker_ttl="5 minutes")
    script = job.job_script()
    command = shlex.split(script.strip().splitlines()[-1])
    assert command[1:4] == ["-m", "caf_hpc.sites.scheduler_in_job", str(plan.scheduler_file)]
    assert "02:00:00" in script and "00:30:00" not in script
    assert "cal-scheduler" in script
    assert "--lifetime" not in command
    options = in_job._arguments(command[3:])
    assert options.interface == "lo" and options.protocol == "tls://" and options.tls_cert.endswith("cert.pem")
    assert options.config == ["distributed.scheduler.allowed-failures=4", "distributed.scheduler.worker-ttl=5 minutes"]
    assert options.client_timeout == 120


def test_in_the_job_the_interface_becomes_dasks_host_and_settings_its_config():
    options = in_job._arguments(["/shared/s.json", "--name", "scheduler", "--nthreads", "4", "--memory-limit", "8GB",
                                 "--death-timeout", "60", "--port", "0", "--client-timeout", "120",
                                 "--interface", "lo", "--protocol", "tls://", "--tls-ca-file", "ca", "--tls-cert", "c",
                                 "--tls-key", "k", "--config", "distributed.scheduler.worker-ttl=5 minutes"])
    command = in_job.scheduler_command(options)
    assert command[1:] == ["-m", "distributed.cli.dask_scheduler", "--scheduler-file", "/shared/s.json", "--port", "0",
                           "--host", "tls://127.0.0.1", "--tls-ca-file", "ca", "--tls-cert", "c", "--tls-key", "k",
                           "--preload", "caf_hpc.sites.scheduler_in_job", "--client-timeout", "120.0"]
    assert in_job.config_variable("distributed.scheduler.worker-ttl") == "DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL"


def test_the_scheduler_writes_its_address_and_tls_files_and_ends_without_a_steering_process(tmp_path):
    """The job's command run here, for real: Dask's scheduler with TLS writes the scheduler file, caf-hpc's preload
    adds where the TLS files are, a client can connect, and once no client has been connected for
    ``--client-timeout`` the scheduler ends (and with it its batch job) and removes its file."""
    from distributed import Client

    from caf_hpc.sites.security import ensure_credentials, security_from_files

    files = ensure_credentials(tmp_path / "tls")
    scheduler_file = tmp_path / "scheduler.json"
    process = subprocess.Popen([sys.executable, "-m", "caf_hpc.sites.scheduler_in_job", str(scheduler_file),
                                "--name", "scheduler", "--port", "0", "--client-timeout", "2", "--interface", "lo",
                                "--protocol", "tls://", "--tls-ca-file", str(files.ca), "--tls-cert", str(files.cert),
                                "--tls-key", str(files.key), "--config", "distributed.scheduler.allowed-failures=7"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 40
        while not (read_address(scheduler_file) and "tls" in json.loads(scheduler_file.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
            time.sleep(0.1)
        written = json.loads(scheduler_file.read_text())
        assert written["address"].startswith("tls://127.0.0.1:")
        assert written["tls"] == {"ca_file": str(files.ca), "cert": str(files.cert), "key": str(files.key)}
        with Client(written["address"], security=security_from_files(files), timeout=20) as client:
            failures = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)
            assert failures == 7
            time.sleep(3)  # longer than --client-timeout: a connected client keeps it
            assert process.poll() is None
        process.wait(timeout=20)  # ends within --client-timeout (2 s) plus a look (1 s) once the client left
        assert process.returncode == 0
        assert not scheduler_file.exists()
        output = process.stdout.read()
        assert "no steering process connected for 2 s" in output, output
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
            process.wait(timeout=10)
