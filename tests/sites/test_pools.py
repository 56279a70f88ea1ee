"""The ``pools`` section of a site config: checked with the file, the key and what is allowed; turned into the
worker arguments and job scripts dask-jobqueue gets."""
from __future__ import annotations

import pytest

from caf_hpc.sites import pools
from caf_hpc.sites.build import cluster_arguments
from caf_hpc.sites.config import load_site
from caf_hpc.sites.errors import SiteConfigError


def _site(isolated_sites, text: str, name: str = "pooled"):
    (isolated_sites / f"{name}.yaml").write_text(text)
    return load_site(name)


BASE = "scheduler: slurm\ncluster: {queue: debug, cores: 1, memory: 1GB, processes: 1}\n"


@pytest.mark.parametrize("section, expected", [
    ("pools: {alignment: {cores: 8, memroy: 16GB}}",
     "pooled.yaml: pools.alignment.memroy: unknown key; did you mean 'memory'? A pool takes jobs, resources and the "
     "job keys of the cluster section it overrides: account,"),
    ("pools: {alignment: {cores: 8, walltime: 1 hour}}",
     "pooled.yaml: pools.alignment.walltime: '1 hour' is not a valid walltime for slurm"),
    ("pools: {alignment: {memory: lots}}", "pooled.yaml: pools.alignment.memory: 'lots' is not an amount of memory"),
    ("pools: {alignment: {jobs: 0}}", "pooled.yaml: pools.alignment.jobs: expected a whole number of at least 1"),
    ("pools: {alignment: {resources: {gpus: many}}}",
     "pooled.yaml: pools.alignment.resources.gpus: expected a positive number, got 'many'"),
    ("pools: {alignment: {resources: {cores: 2}}}",
     "pooled.yaml: pools.alignment.resources: cores come from the pool's own cores and memory"),
    ("pools: {big pool: {cores: 8}}", "pooled.yaml: pools.big pool: a pool's name is a word of letters"),
    ("pools: [alignment]", "pooled.yaml: pools: expected a mapping of keys to values, got a list"),
    ("runner: {resources: {Millepede: {memroy: 16GB}}}",
     "pooled.yaml: runner.resources: Millepede.memroy: unknown resource; did you mean 'memory'?"),
])
def test_a_mistake_in_the_pools_is_named_with_file_key_and_what_is_allowed(isolated_sites, section, expected):
    with pytest.raises(SiteConfigError) as raised:
        _site(isolated_sites, BASE + section + "\n")
    assert expected in str(raised.value), str(raised.value)


def test_the_local_site_has_no_pools(isolated_sites):
    with pytest.raises(SiteConfigError, match="pools: a local site has one kind of worker; pools are for batch"):
        _site(isolated_sites, "scheduler: local\npools: {big: {}}\n")


def test_each_pool_gives_its_own_cores_and_memory_and_every_worker_declares_them(isolated_sites):
    site = _site(isolated_sites, BASE + "pools: {alignment: {cores: 8, memory: 16GB, processes: 2, "
                                        "resources: {gpus: 1}, jobs: 2}}\n")
    assert pools.offers(site) == [("the default pool (cluster)", {"cores": 1.0, "memory": 1e9}),
                                  ("pool 'alignment' (2 job(s))", {"cores": 4.0, "memory": 8e9, "gpus": 1.0})]
    _, kwargs = cluster_arguments(site)
    kwargs = pools.default_pool_arguments(site, kwargs)
    assert kwargs["worker_extra_args"][-2:] == ["--resources", "cores=1,memory=1000000000"]


def test_a_site_without_pools_keeps_its_job_script(isolated_sites):
    site = _site(isolated_sites, BASE)
    _, kwargs = cluster_arguments(site)
    assert pools.default_pool_arguments(site, kwargs) is kwargs and not site.pools
