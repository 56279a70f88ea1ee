"""What a site exposes: the dashboard and the local scheduler on loopback, no key material in job scripts."""
from __future__ import annotations

import os

import psutil
import pytest

from caf_hpc import DaskAlgorithmsRunner
from caf_hpc.sites import load_site
from caf_hpc.sites.build import cluster_arguments
from caf_hpc.sites.jobscript import job_script
from caf_hpc.sites.lookup import site_files
from caf_hpc.sites.security import ensure_credentials, tls_directory
from caf_hpc.steering import clusters

#: The shipped batch sites that load as they are (the others hold placeholders for the user's values).
BATCH_SITES = [entry.name for entry in site_files() if entry.name.startswith("localhost-")]


def _key_lines(key_file) -> list:
    """The base64 lines of a PEM key: any one of them in a file would leak part of the key."""
    return [line for line in key_file.read_text().splitlines() if line and not line.startswith("-----")]


def test_local_default_listens_on_loopback_only():
    client = clusters.client_for(DaskAlgorithmsRunner.settings())
    pids = [client.run_on_scheduler(os.getpid), *client.run(os.getpid).values()]
    listening = [c.laddr for pid in pids for c in psutil.Process(pid).net_connections("inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and {address.ip for address in listening} == {"127.0.0.1"}, listening


@pytest.mark.parametrize("name", BATCH_SITES)
def test_shipped_batch_site_keeps_its_dashboard_on_loopback(name, isolated_sites):
    _, kwargs = cluster_arguments(load_site(name))
    assert kwargs["scheduler_options"]["dashboard_address"].startswith("127.0.0.1:")


@pytest.mark.parametrize("name", BATCH_SITES)
def test_job_script_names_the_key_file_and_holds_no_key_material(name, isolated_sites):
    site = load_site(name)
    files = ensure_credentials(tls_directory(site.security["directory"]))
    script = job_script(site)
    assert f"--tls-key {files.key}" in script
    assert "PRIVATE KEY" not in script
    assert not [line for line in _key_lines(files.key) if line in script]
