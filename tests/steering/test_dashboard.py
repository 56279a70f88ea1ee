"""The dashboard address the runner prints serves Dask's dashboard (Bokeh is installed with caf-hpc)."""
from __future__ import annotations

import urllib.request

from caf_hpc import DaskAlgorithmsRunner
from caf_hpc.steering import clusters


def test_printed_dashboard_address_serves_the_dashboard():
    client = clusters.client_for(DaskAlgorithmsRunner.settings())
    link = client.dashboard_link
    assert link.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(link, timeout=30) as response:  # /status, the page Dask's link names
        page = response.read().decode()
    assert response.status == 200 and "Dask" in page and "install bokeh" not in page.lower()
