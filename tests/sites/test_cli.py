"""``caf-hpc sites list|show|check`` and ``caf-hpc job-script`` through ``caf_hpc.cli.main``."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from caf_hpc.cli import main
from caf_hpc.sites import load_site
from caf_hpc.sites.jobscript import job_script
from tests.helpers.batch_queues import jobs_named
from tests.helpers.requirements import require_testbed

pytestmark = [pytest.mark.usefixtures("isolated_sites"), pytest.mark.timeout(30)]

SHIPPED = ["htcondor", "local", "localhost-pbs", "localhost-sge", "localhost-slurm", "localhost-slurm-podman", "lsf",
           "pbs", "sge", "slurm"]


#: Where Debian's gridengine packages (installed by the SGE testbed) put Grid Engine's qsub, without
#: the testbed's PBS directory that a developer's shell may have put first on PATH.
SYSTEM_PATH = "/usr/bin:/bin"


@pytest.fixture
def testbed(monkeypatch):
    """``testbed(name, **overrides)`` submits this test's commands to the real testbed ``name`` (skips when down)."""
    def use(name: str, **overrides: str) -> None:
        for key, value in {**require_testbed(name), **overrides}.items():
            monkeypatch.setenv(key, value)
    return use


@pytest.fixture
def user_site(isolated_sites):
    """``user_site(name, text)`` writes a real site config where CAF_HPC_SITE_PATH finds it."""
    directory = isolated_sites

    def write(name: str, text: str) -> str:
        (directory / f"{name}.yaml").write_text(text)
        return name
    return write


def slurm_site(queue: str = "debug", job_name: str = "dask-worker") -> str:
    return (f"scheduler: slurm\n"
            f"cluster: {{queue: {queue}, cores: 1, processes: 1, memory: 1GB, walltime: '00:10:00', interface: lo,\n"
            f"          job_name: {job_name}}}\n"
            f"security: {{tls: true, directory: '~/.caf-hpc/tls/{{site}}'}}\n")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sites_list_shows_name_scheduler_and_file(capsys):
    code, out, _ = run(capsys, "sites", "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["NAME", "SCHEDULER", "FILE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert sorted(rows) == SHIPPED
    assert rows["localhost-pbs"][1] == "pbs" and rows["localhost-pbs"][2].endswith("site-configs/localhost-pbs.yaml")
    assert "(template: fill in the <PLACEHOLDERS>)" in {line.split()[0]: line for line in lines[1:]}["slurm"]


def test_sites_list_includes_user_sites_and_shadowing(capsys, tmp_path):
    user = tmp_path / "home" / ".config" / "caf-hpc" / "sites"
    user.mkdir(parents=True)
    (user / "local.yaml").write_text("scheduler: local\n")
    (user / "kekcc.yaml").write_text("scheduler: lsf\n")
    _, out, _ = run(capsys, "sites", "list")
    assert any(line.split()[:3] == ["kekcc", "lsf", str(user / "kekcc.yaml")] for line in out.splitlines())
    assert f"{user / 'local.yaml'}  (shadowed by " in out


def test_sites_show_prints_the_merged_config_as_yaml(capsys):
    code, out, _ = run(capsys, "sites", "show", "localhost-slurm")
    assert code == 0 and out.startswith("# localhost-slurm: ")
    assert yaml.safe_load(out) == load_site("localhost-slurm").as_dict()
    assert yaml.safe_load(out)["security"] == {"tls": True, "directory": "~/.caf-hpc/tls/localhost-slurm"}


def test_sites_show_of_a_template_prints_it_with_what_to_fill_in_marked(capsys, user_site):
    code, out, err = run(capsys, "sites", "show", "slurm")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == ("# slurm: site-configs/slurm.yaml, a template: as written, "
                        "each line to fill in marked '<- fill in'")
    shipped = (load_site("localhost-slurm").path.parent / "slurm.yaml").read_text()
    marked = [line for line in lines if line.endswith("<- fill in")]
    assert [line.split()[0] for line in marked] == ["queue:", "account:"]
    assert marked[0].startswith("  queue: <PARTITION>") and "# sbatch -p" in marked[0]
    assert [line.removesuffix("   <- fill in") for line in lines[1:-2]] == shipped.splitlines()  # all of it
    assert lines[-2] == ("# To fill in before `caf-hpc sites check NAME` accepts it: cluster.queue (<PARTITION>), "
                         "cluster.account (<ACCOUNT>).")
    assert lines[-1].startswith("# Copy it first: cp ") and lines[-1].endswith("/.config/caf-hpc/sites/NAME.yaml")
    assert yaml.safe_load(out) == yaml.safe_load(shipped)  # the marks are comments: a copy of it is the template

    # filled in, the copy is accepted and shown as caf-hpc uses it; a run still refuses the template
    user_site("mysite", "\n".join(lines).replace("<PARTITION>", "belle").replace("<ACCOUNT>", "b2"))
    assert run(capsys, "sites", "check", "mysite", "--no-submit")[0] == 0
    assert run(capsys, "sites", "show", "mysite")[1].startswith("# mysite: ")
    from caf_hpc import SettingsError, runner_for
    with pytest.raises(SettingsError, match="placeholder '<PARTITION>' not filled in"):
        runner_for("slurm")


def test_sites_show_of_a_template_with_another_mistake_refuses_it(capsys, user_site, isolated_sites):
    user_site("broken", "scheduler: slurm\ncluster: {queue: <PARTITION>, cores: four, memory: 1GB}\n")
    code, out, err = run(capsys, "sites", "show", "broken")
    assert code == 2 and out == ""
    assert err == (f"caf-hpc: error: {isolated_sites / 'broken.yaml'}: cluster.cores: expected a whole number of "
                   "at least 1, got 'four'\n")  # the placeholder is no mistake here; the rest is


def test_sites_check_of_a_template_fails_without_traceback(capsys):
    code, out, err = run(capsys, "sites", "check", "slurm")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "caf-hpc: error: site-configs/slurm.yaml: cluster.queue: placeholder '<PARTITION>' not filled in; "
        "replace it with the value for your site",
        "site-configs/slurm.yaml: cluster.account: placeholder '<ACCOUNT>' not filled in; "
        "replace it with the value for your site"]


def test_sites_check_of_a_bad_file(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("scheduler: pbs\ncluster: {cores: 1, memory: lots}\n")
    code, _, err = run(capsys, "sites", "check", str(path))
    assert code == 2
    assert err == (f"caf-hpc: error: {path}: cluster.memory: 'lots' is not an amount of memory; "
                   "write e.g. '4GB' or '3.5GiB'\n")


def test_sites_check_of_an_unknown_name(capsys):
    code, _, err = run(capsys, "sites", "check", "nowhere")
    assert code == 2 and err.startswith("caf-hpc: error: nowhere: no site config of that name")


def test_sites_check_local_has_nothing_to_submit(capsys):
    code, out, _ = run(capsys, "sites", "check", "local")
    assert code == 0
    assert out.splitlines()[0].startswith("local: valid (local, ")
    assert "nothing to submit" in out


@pytest.mark.batch
def test_sites_check_without_submitting(capsys, testbed, user_site):
    """--no-submit against the real Slurm: no dry submission is reported, and no job of the site's name is queued."""
    testbed("slurm")
    job_name = f"caf-nosubmit-{os.getpid()}"
    name = user_site("nosubmit", slurm_site(job_name=job_name))
    code, out, _ = run(capsys, "sites", "check", name, "--no-submit")
    assert code == 0 and "dry submission" not in out
    assert "TLS: on, credentials in " in out
    assert jobs_named("slurm", job_name) == []


@pytest.mark.batch
def test_sites_check_dry_submits_with_sbatch_test_only(capsys, testbed):
    testbed("slurm")
    code, out, _ = run(capsys, "sites", "check", "localhost-slurm")
    assert code == 0, out
    assert "dry submission: sbatch --test-only accepted the job" in out
    # Slurm's own answer, for the partition the site's `#SBATCH -p debug` names
    assert re.search(r"^  sbatch: Job \d+ to start at \S+ using 1 processors on nodes \S+ in partition debug$", out,
                     re.MULTILINE), out


@pytest.mark.batch
def test_sites_check_reports_a_refused_dry_submission(capsys, testbed, user_site):
    testbed("slurm")
    name = user_site("nosuchqueue", slurm_site(queue="nosuchpartition"))
    code, out, _ = run(capsys, "sites", "check", name)
    assert code == 1
    assert "dry submission: sbatch --test-only refused the job (exit code 1)" in out
    assert "  sbatch: error: invalid partition specified: nosuchpartition" in out.splitlines()


@pytest.mark.batch
def test_sites_check_sge_verifies_with_qsub_w_v(capsys, testbed):
    testbed("sge", PATH=SYSTEM_PATH)
    code, out, _ = run(capsys, "sites", "check", "localhost-sge")
    assert code == 0 and "dry submission: qsub -w v accepted the job" in out, out
    assert "  verification: found suitable queue(s)" in out.splitlines()


@pytest.mark.batch
def test_sites_check_pbs_refuses_a_grid_engine_qsub(capsys, testbed):
    testbed("sge", PATH=SYSTEM_PATH)  # /usr/bin/qsub is Grid Engine's
    version = subprocess.run(["/usr/bin/qsub", "-help"], capture_output=True, text=True, timeout=30).stdout
    version = version.splitlines()[0]
    assert version.startswith("SGE ")
    code, out, _ = run(capsys, "sites", "check", "localhost-pbs")
    assert code == 1
    assert (f"dry submission: the qsub on PATH (/usr/bin/qsub) is Grid Engine's ({version}), not PBS's; "
            "put the PBS commands first on PATH (for this machine's testbed: "
            'eval "$(caf-hpc testbed env pbs)")') in out.splitlines()


@pytest.mark.batch
def test_sites_check_pbs_over_slurm_uses_sbatch_beside_qsub(capsys, testbed):
    testbed("pbs")  # slurm-wlm-torque's qsub first on PATH
    code, out, _ = run(capsys, "sites", "check", "localhost-pbs")
    assert code == 0, out
    assert "sbatch --test-only accepted the job (qsub is slurm-wlm-torque's wrapper over Slurm)" in out
    assert re.search(r"^  sbatch: Job \d+ to start at .* in partition debug$", out, re.MULTILINE), out


def test_sites_check_without_the_scheduler_commands(capsys, tmp_path, monkeypatch):
    empty = tmp_path / "bin"  # a PATH with no batch commands on it
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code, out, _ = run(capsys, "sites", "check", "localhost-slurm")
    assert code == 0 and "dry submission: sbatch not found on PATH: no dry submission" in out


def test_job_script_prints_the_exact_script(capsys, tmp_path):
    code, out, err = run(capsys, "job-script", "localhost-pbs")
    assert code == 0
    assert out == job_script(load_site("localhost-pbs"), directories=[os.getcwd()])
    logs = tmp_path / "home" / ".caf-hpc" / "logs" / "localhost-pbs"
    assert f"`qsub -o {logs}/%x-%j.out -e {logs}/%x-%j.err SCRIPT`" in err


def test_job_script_of_the_local_site_is_refused(capsys):
    code, _, err = run(capsys, "job-script", "local")
    assert code == 2 and "scheduler local submits no batch jobs, so there is no job script" in err


@pytest.mark.parametrize("argv", [["sites"], ["sites", "list"], ["sites", "show"], ["sites", "check"],
                                  ["job-script"]], ids=" ".join)
def test_every_command_has_help(capsys, argv):
    with pytest.raises(SystemExit) as done:
        main(argv + ["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    assert out.startswith(f"usage: caf-hpc {' '.join(argv)}")


@pytest.mark.timeout(180)
def test_read_only_commands_write_nothing(tmp_path, testbed):
    """show, check and job-script read site configs; not a file may appear in the user's home for them
    (importing dask-jobqueue would write ~/.config/dask/jobqueue.yaml, its Job would make the log directory).
    Each must have done its work, the dry submission to the testbed's Slurm included: a command that
    failed early would write nothing too."""
    testbed("slurm")
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CAF_HPC_", "XDG_", "DASK_"))}
    env.update(HOME=str(home), PATH=SYSTEM_PATH + ":" + os.path.dirname(sys.executable))
    for command, done in ((["sites", "show", "localhost-slurm"], "scheduler: slurm"),
                          (["sites", "check", "localhost-slurm"], "dry submission: sbatch --test-only accepted"),
                          (["job-script", "localhost-slurm"], "#SBATCH"),
                          (["job-script", "localhost-slurm-podman"], "podman run --rm")):
        ran = subprocess.run([sys.executable, "-m", "caf_hpc.cli", *command], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=120, check=False)
        assert ran.returncode == 0 and done in ran.stdout, (command, ran.stdout[-2000:], ran.stderr[-2000:])
        assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == [], command
