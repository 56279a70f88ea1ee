"""Site-config validation: every mistake is refused before anything is submitted, with a message saying how
to fix it."""
from __future__ import annotations

import textwrap

import pytest
import yaml

from caf_hpc.sites import SiteConfigError, load_site, schedulers
from caf_hpc.sites.lookup import site_files

pytestmark = [pytest.mark.usefixtures("isolated_sites"), pytest.mark.timeout(20)]

SLURM = """\
scheduler: slurm
cluster:
  queue: debug
  cores: 2
  memory: 2GB
  walltime: "01:00:00"
"""

SCHEDULERS = "local, slurm, pbs, sge, lsf, htcondor"
SECTIONS = "scheduler, description, cluster, pools, scale, container, security, runner, dask_scheduler"


def keys(scheduler: str) -> str:
    return ", ".join(schedulers.get(scheduler).cluster_keys())


def with_section(extra: str, base: str = SLURM) -> str:
    return base + textwrap.dedent(extra)


# (id, config text, the exact message; {file} is the config's path)
BAD_CONFIGS = [
    ("unknown cluster key with a suggestion",
     SLURM + "  memroy: 4GB\n",
     "{file}: cluster.memroy: unknown key; did you mean 'memory'? Allowed keys for slurm: " + keys("slurm")),
    ("unknown cluster key without a suggestion",
     SLURM + "  colour: blue\n",
     "{file}: cluster.colour: unknown key. Allowed keys for slurm: " + keys("slurm")),
    ("key of another scheduler",
     SLURM + "  resource_spec: select=1\n",
     "{file}: cluster.resource_spec: does not apply to slurm (it is a key for pbs, sge). Allowed keys for slurm: "
     + keys("slurm")),
    ("walltime under htcondor",
     "scheduler: htcondor\ncluster: {cores: 1, memory: 1GB, disk: 1GB, walltime: '01:00:00'}\n",
     "{file}: cluster.walltime: does not apply to htcondor (it is a key for slurm, pbs, sge, lsf). "
     "Allowed keys for htcondor: " + keys("htcondor")),
    ("batch key under local",
     "scheduler: local\ncluster: {cores: 4}\n",
     "{file}: cluster.cores: does not apply to local (it is a key for slurm, pbs, sge, lsf, htcondor). "
     "Allowed keys for local: n_workers, dashboard_address"),
    ("deprecated dask-jobqueue name",
     SLURM + "  env_extra: ['module load python']\n",
     "{file}: cluster.env_extra: renamed by dask-jobqueue; use 'job_script_prologue'"),
    ("project on slurm",
     SLURM + "  project: belle\n",
     "{file}: cluster.project: renamed by dask-jobqueue for slurm; use 'account'"),
    ("security inside cluster",
     SLURM + "  security: true\n",
     "{file}: cluster.security: set by caf-hpc; use the security section (tls, directory)"),
    ("n_workers inside a batch cluster",
     SLURM + "  n_workers: 3\n",
     "{file}: cluster.n_workers: use the scale section (minimum_jobs, maximum_jobs and idle_grace, or a fixed "
     "number of jobs)"),
    ("dashboard outside scheduler_options",
     SLURM + "  dashboard_address: ':8787'\n",
     "{file}: cluster.dashboard_address: put it in cluster.scheduler_options, as dask-jobqueue requires"),
    ("same key spelled twice",
     SLURM + "  death-timeout: 60\n  death_timeout: 90\n",
     "{file}: cluster.death_timeout: given twice (also as 'death-timeout')"),
    ("cores not a number",
     SLURM.replace("cores: 2", "cores: four"),
     "{file}: cluster.cores: expected a whole number of at least 1, got 'four'"),
    ("memory not an amount",
     SLURM.replace("memory: 2GB", "memory: lots"),
     "{file}: cluster.memory: 'lots' is not an amount of memory; write e.g. '4GB' or '3.5GiB'"),
    ("slurm job_mem with a space",
     SLURM + "  job_mem: 1 GB\n",
     "{file}: cluster.job_mem: '1 GB' is not a Slurm memory size; write e.g. '4000M' or '4G'"),
    ("slurm walltime in words",
     SLURM.replace('"01:00:00"', "1 hour"),
     "{file}: cluster.walltime: '1 hour' is not a valid walltime for slurm; "
     "write MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"),
    ("unquoted walltime read as seconds",
     SLURM.replace('"01:00:00"', "12:00:00"),
     "{file}: cluster.walltime: expected a quoted time such as '01:00:00', got the number 43200 "
     "(YAML reads an unquoted time like 12:00:00 as a number of seconds)"),
    ("lsf walltime with seconds",
     "scheduler: lsf\ncluster: {cores: 1, memory: 1GB, walltime: '01:00:00'}\n",
     "{file}: cluster.walltime: '01:00:00' is not a valid walltime for lsf; write HH:MM or minutes"),
    ("directives as one string",
     SLURM + "  job_extra_directives: --qos=high\n",
     "{file}: cluster.job_extra_directives: expected a list of strings, got the single string '--qos=high'; "
     "write it as ['--qos=high']"),
    ("memory missing",
     "scheduler: pbs\ncluster: {cores: 1}\n",
     "{file}: cluster.memory: missing; dask-jobqueue needs cores and memory per job"),
    ("more processes than cores",
     SLURM + "  processes: 4\n",
     "{file}: cluster.processes: 4 worker processes cannot share 2 core(s); give at most as many processes as cores"),
    ("unfilled placeholder",
     SLURM + "  account: <ACCOUNT>\n",
     "{file}: cluster.account: placeholder '<ACCOUNT>' not filled in; replace it with the value for your site"),
    ("placeholder inside a list",
     SLURM + "  job_extra_directives: ['--qos=<QOS>']\n",
     "{file}: cluster.job_extra_directives: placeholder '<QOS>' not filled in; "
     "replace it with the value for your site"),
    ("unknown scheduler",
     SLURM.replace("scheduler: slurm", "scheduler: slurmm"),
     f"{{file}}: scheduler: unknown scheduler 'slurmm'; did you mean 'slurm'? Allowed: {SCHEDULERS}"),
    ("no scheduler",
     "cluster: {cores: 1}\n",
     f"{{file}}: scheduler: missing; allowed: {SCHEDULERS}"),
    ("unknown section",
     SLURM + "clsuter: {}\n",
     f"{{file}}: clsuter: unknown section; did you mean 'cluster'? Allowed sections: {SECTIONS}"),
    ("unknown section beside other mistakes",
     SLURM + "  memroy: 4GB\nsclae: {jobs: 1}\n",
     f"{{file}}: sclae: unknown section; did you mean 'scale'? Allowed sections: {SECTIONS}\n"
     "{file}: cluster.memroy: unknown key; did you mean 'memory'? Allowed keys for slurm: " + keys("slurm")),
    ("section that is not a mapping",
     "scheduler: slurm\ncluster: [cores, memory]\n",
     "{file}: cluster: expected a mapping of keys to values, got a list"),
    ("not a mapping at all",
     "- slurm\n",
     f"{{file}}: expected a mapping of sections ({SECTIONS}), got a list"),
    ("not YAML",
     "scheduler: slurm\ncluster: [cores\n",
     "{file}: line 3, column 1: not valid YAML: expected ',' or ']', but got '<stream end>'"),
    ("unknown container runtime",
     with_section("container: {runtime: docker, image: belle2}\n"),
     "{file}: container.runtime: unknown runtime 'docker'. Allowed: apptainer, singularity, podman"),
    ("apptainer image that does not exist",
     with_section("container: {runtime: apptainer, image: /nonexistent/belle2.sif}\n"),
     "{file}: container.image: /nonexistent/belle2.sif does not exist; apptainer needs an image file that the "
     "workers can read (or a docker://, library:// or oras:// URI)"),
    ("container without image",
     with_section("container: {runtime: podman}\n"),
     "{file}: container.image: missing; give the image file (apptainer, singularity) or name (podman)"),
    ("container env without a value",
     with_section("container: {runtime: podman, image: belle2, env: [FOO]}\n"),
     "{file}: container.env[0]: expected NAME=value, got 'FOO'"),
    ("unknown container key",
     with_section("container: {runtime: podman, image: belle2, bind: [/cvmfs]}\n"),
     "{file}: container.bind: unknown key; did you mean 'binds'? Allowed keys: runtime, image, binds, env, options"),
    ("TLS without a directory",
     with_section("security: {tls: true, directory: null}\n"),
     "{file}: security.directory: TLS is on but no directory is given; give one that the workers can read, on a "
     "file system they share (e.g. ~/.caf-hpc/tls/{{site}}), or set tls: false"),
    ("TLS directory relative",
     with_section("security: {directory: certs}\n"),
     "{file}: security.directory: 'certs' is relative; give an absolute path (or one starting with ~) on a file "
     "system the workers share"),
    ("TLS directory node-local",
     with_section("security: {directory: /tmp/certs}\n"),
     "{file}: security.directory: /tmp/certs is on a node-local file system; workers on other nodes cannot read "
     "it: give a directory on a shared file system, e.g. ~/.caf-hpc/tls/{{site}}"),
    ("tls not a boolean",
     with_section("security: {tls: maybe}\n"),
     "{file}: security.tls: expected true or false, got 'maybe'"),
    ("fixed and adaptive scale",
     with_section("scale: {jobs: 2, maximum_jobs: 4}\n"),
     "{file}: scale: jobs (a fixed number of jobs) cannot go with maximum_jobs (adaptive scaling, the default): "
     "give jobs alone, or leave it out for jobs that follow the work"),
    ("idle grace with fixed jobs",
     with_section("scale: {jobs: 2, idle_grace: 30}\n"),
     "{file}: scale: jobs (a fixed number of jobs) cannot go with idle_grace (adaptive scaling, the default): "
     "give jobs alone, or leave it out for jobs that follow the work"),
    ("idle grace misspelt",
     with_section("scale: {idle_grac: 30}\n"),
     "{file}: scale.idle_grac: unknown key; did you mean 'idle_grace'? Allowed keys: jobs, minimum_jobs, "
     "maximum_jobs, idle_grace"),
    ("idle grace in words",
     with_section("scale: {idle_grace: a minute}\n"),
     "{file}: scale.idle_grace: expected a number of seconds (0 or more), got 'a minute'"),
    ("idle grace negative",
     with_section("scale: {idle_grace: -5}\n"),
     "{file}: scale.idle_grace: expected a number of seconds (0 or more), got -5"),
    ("minimum above the default maximum",
     with_section("scale: {minimum_jobs: 12}\n"),
     "{file}: scale.minimum_jobs: 12 is more than maximum_jobs 10 (the default; give maximum_jobs too)"),
    ("minimum above maximum",
     with_section("scale: {minimum_jobs: 5, maximum_jobs: 2}\n"),
     "{file}: scale.minimum_jobs: 5 is more than maximum_jobs 2"),
    ("scale under local",
     "scheduler: local\nscale: {jobs: 2}\n",
     "{file}: scale: does not apply to local; set cluster.n_workers instead"),
    ("negative retries",
     with_section("runner: {retries: -1}\n"),
     "{file}: runner.retries: expected a whole number of at least 0, got -1"),
    ("timeout in words",
     with_section("runner: {timeout: long}\n"),
     "{file}: runner.timeout: expected a positive number of seconds, got 'long'"),
    ("no jobs at all",
     with_section("scale: {jobs: 0}\n"),
     "{file}: scale.jobs: 0 jobs would start no worker, and every strategy would wait for one in vain; give at "
     "least 1, or leave jobs out for jobs only while there is work (adaptive: minimum_jobs, maximum_jobs, "
     "idle_grace)"),
    ("adaptive up to no job",
     with_section("scale: {minimum_jobs: 0, maximum_jobs: 0}\n"),
     "{file}: scale.maximum_jobs: 0 would start no worker ever; give at least 1"),
    ("queue with a shell command",
     with_section("cluster: {queue: 'debug; touch /tmp/x', cores: 1, memory: 1GB}\n", base="scheduler: slurm\n"),
     "{file}: cluster.queue: 'debug; touch /tmp/x' has ' ;', which the job script would hand to the shell or its "
     "batch directives unquoted; use letters, digits and _ . / ~ @ % + = : , - only (rename the directory or queue, "
     "or set it from job_script_prologue, which is your own shell)"),
    ("worker argument with a substitution",
     with_section("cluster: {cores: 1, memory: 1GB, worker_extra_args: ['--lifetime', '$(id)']}\n",
                  base="scheduler: slurm\n"),
     "{file}: cluster.worker_extra_args[1]: '$(id)' has '$()', which the job script would hand to the shell or its "
     "batch directives unquoted; use letters, digits and _ . / ~ @ % + = : , - only (rename the directory or queue, "
     "or set it from job_script_prologue, which is your own shell)"),
    ("preload as one string",
     with_section("runner: {preload: ROOT}\n"),
     "{file}: runner.preload: expected a list of module names, got 'ROOT'; each entry is 'package.module' to "
     "import it, or 'package.module:function' to import it and call function()"),
    ("preload entry with a path",
     with_section("runner: {preload: [ROOT, ./algorithms.py]}\n"),
     "{file}: runner.preload: entry './algorithms.py' is not 'package.module' to import it, or "
     "'package.module:function' to import it and call function()"),
]


def write(tmp_path, text: str, name: str = "site.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [case[1:] for case in BAD_CONFIGS], ids=[case[0] for case in BAD_CONFIGS])
def test_bad_config_is_refused_with_its_message(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SiteConfigError) as caught:
        load_site(str(path))
    assert str(caught.value) == message.format(file=path)


#: Mistakes of the table in different sections and keys, none depending on another: made in one file,
#: each must be reported as when it is the file's only one.
TOGETHER = ["unknown cluster key with a suggestion", "dashboard outside scheduler_options",
            "deprecated dask-jobqueue name", "memory not an amount", "slurm walltime in words",
            "directives as one string", "unfilled placeholder", "unknown container runtime",
            "TLS directory relative", "idle grace in words", "negative retries", "preload as one string"]


def _merged(names: list) -> tuple:
    """One config holding the mistakes ``names`` of the table, and the lines each gave alone."""
    cases = {name: (text, message) for name, text, message in BAD_CONFIGS}
    base = yaml.safe_load(SLURM)
    merged, expected = yaml.safe_load(SLURM), []
    touched: set[tuple[str, ...]] = set()  # (section, key), or (section,) for a value that is not a mapping
    for name in names:
        text, message = cases[name]
        for section, value in yaml.safe_load(text).items():
            changed: set[tuple[str, ...]] = \
                {(section, key) for key, item in value.items() if base.get(section, {}).get(key) != item} \
                if isinstance(value, dict) else ({(section,)} if base.get(section) != value else set())
            assert not changed & touched, f"{name} changes what another mistake changed: {changed & touched}"
            touched |= changed
            if isinstance(value, dict):
                merged.setdefault(section, {}).update({key: value[key] for _, key in changed})
            elif changed:
                merged[section] = value
        expected += message.splitlines()
    return merged, expected


def test_a_file_with_a_dozen_mistakes_gets_each_one_reported_as_alone(tmp_path):
    merged, expected = _merged(TOGETHER)
    path = write(tmp_path, yaml.safe_dump(merged, sort_keys=False))
    with pytest.raises(SiteConfigError) as caught:
        load_site(str(path))
    assert sorted(str(caught.value).splitlines()) == sorted(line.format(file=path) for line in expected)


def test_every_mistake_is_reported_at_once(tmp_path):
    path = write(tmp_path, SLURM.replace("memory: 2GB", "memory: lots") + "  memroy: 4GB\n")
    with pytest.raises(SiteConfigError) as caught:
        load_site(str(path))
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["cluster.memory", "cluster.memroy"]


def test_site_config_error_is_a_settings_error_and_value_error():
    from caf_hpc.steering.settings import SettingsError

    assert issubclass(SiteConfigError, SettingsError) and issubclass(SiteConfigError, ValueError)


@pytest.mark.parametrize("scheduler", schedulers.batch_names())
def test_a_jobqueue_yaml_section_pastes_in(tmp_path, scheduler):
    """dask-jobqueue's own jobqueue.yaml section (hyphenated keys, `name`) is a valid cluster section."""
    section = {k: v for k, v in yaml.safe_load(open(_jobqueue_yaml()))["jobqueue"][scheduler].items()
               if v is not None and k not in ("extra", "job-extra", "env-extra", "header-skip")}
    section.update({"cores": 1, "memory": "1GB"}, **({"disk": "1GB"} if scheduler == "htcondor" else {}))
    path = write(tmp_path, yaml.safe_dump({"scheduler": scheduler, "cluster": section}))
    site = load_site(str(path))
    assert site.cluster["job_name"] == "dask-worker"
    assert "death_timeout" in site.cluster and "death-timeout" not in site.cluster


def _jobqueue_yaml() -> str:
    import os

    import dask_jobqueue

    return os.path.join(os.path.dirname(dask_jobqueue.__file__), "jobqueue.yaml")


def test_allowed_keys_come_from_dask_jobqueue_signatures():
    import inspect

    from dask_jobqueue import SLURMCluster

    slurm = set(schedulers.get("slurm").cluster_keys())
    assert set(inspect.signature(SLURMCluster.job_cls.__init__).parameters) - {"self", "scheduler", "name",
                                                                               "config_name", "project",
                                                                               "base_class_kwargs"} <= slurm
    assert {"cores", "memory", "walltime", "job_script_prologue", "scheduler_options", "python"} <= slurm
    assert not {"security", "protocol", "n_workers", "env_extra", "project", "loop"} & slurm
    assert "resource_spec" in schedulers.get("pbs").cluster_keys()
    assert "disk" in schedulers.get("htcondor").cluster_keys()


@pytest.mark.parametrize("name", ["local", "localhost-slurm", "localhost-pbs", "localhost-sge"])
def test_shipped_ready_sites_are_valid(name):
    site = load_site(name)
    assert site.name == name


@pytest.mark.parametrize("name", ["slurm", "pbs", "sge", "lsf", "htcondor"])
def test_shipped_templates_fail_only_on_their_placeholders(name):
    with pytest.raises(SiteConfigError) as caught:
        load_site(name)
    lines = str(caught.value).splitlines()
    assert lines and all("placeholder '<" in line and line.startswith(f"site-configs/{name}.yaml: ")
                         for line in lines)


def test_every_shipped_file_is_found_in_the_package():
    names = {site.name for site in site_files() if site.origin == "package"}
    assert names == {"local", "slurm", "pbs", "sge", "lsf", "htcondor",
                     "localhost-slurm", "localhost-pbs", "localhost-sge", "localhost-slurm-podman"}


def test_defaults_fill_in_tls_scale_and_dashboard(tmp_path):
    site = load_site(str(write(tmp_path, SLURM, "mysite.yaml")))
    assert site.security == {"tls": True, "directory": "~/.caf-hpc/tls/mysite"}
    assert site.scale == {"minimum_jobs": 0, "maximum_jobs": 10, "idle_grace": 60}  # adaptive by default


def test_an_adaptive_scale_gets_the_defaults_it_leaves_out_and_a_fixed_one_stays(tmp_path):
    site = load_site(str(write(tmp_path, with_section("scale: {maximum_jobs: 4}\n"), "adaptive.yaml")))
    assert site.scale == {"minimum_jobs": 0, "maximum_jobs": 4, "idle_grace": 60}
    site = load_site(str(write(tmp_path, with_section("scale: {jobs: 3}\n"), "fixed.yaml")))
    assert site.scale == {"jobs": 3}
    assert site.cluster["scheduler_options"] == {"dashboard_address": "127.0.0.1:0"}


def test_apptainer_image_that_exists_and_uris_are_accepted(tmp_path):
    image = tmp_path / "belle2.sif"
    image.write_bytes(b"")
    for ref in (str(image), "docker://belle2/externals:latest", "oras://registry/belle2:1"):
        load_site(str(write(tmp_path, with_section(f"container: {{runtime: apptainer, image: '{ref}'}}\n"))))
