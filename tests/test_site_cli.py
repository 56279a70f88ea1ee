"""``caf-hpc sites list|show|check`` and ``caf-hpc job-script`` through ``caf_hpc.cli.main``."""
from __future__ import annotations

import os
import stat
import textwrap

import pytest
import yaml

from caf_hpc.cli import main
from caf_hpc.sites import load_site
from caf_hpc.sites.jobscript import job_script

pytestmark = pytest.mark.timeout(30)

SHIPPED = ["htcondor", "local", "localhost-pbs", "localhost-sge", "localhost-slurm", "lsf", "pbs", "sge", "slurm"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("CAF_HPC_SITE_PATH", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fake_bin(tmp_path, monkeypatch):
    """A directory first on PATH (and nothing else) for stand-ins of batch commands."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))

    def add(name: str, body: str) -> None:
        path = directory / name
        path.write_text("#!/bin/sh\nPATH=/usr/bin:/bin\n" + textwrap.dedent(body))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return add


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
    assert "(template: fill in the <PLACEHOLDERS>)" in dict((l.split()[0], l) for l in lines[1:])["slurm"]


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


def test_sites_check_without_submitting(capsys, fake_bin):
    fake_bin("sbatch", "echo called >&2; exit 7\n")
    code, out, _ = run(capsys, "sites", "check", "localhost-slurm", "--no-submit")
    assert code == 0 and "dry submission" not in out
    assert "TLS: on, credentials in " in out


def test_sites_check_dry_submits_with_sbatch_test_only(capsys, fake_bin):
    fake_bin("sbatch", """\
        [ "$1" = --test-only ] || exit 9
        grep -q '^#SBATCH -p debug' "$2" || exit 8
        echo "sbatch: Job 1 to start at now using 1 processors on nodes localhost in partition debug" >&2
        """)
    code, out, _ = run(capsys, "sites", "check", "localhost-slurm")
    assert code == 0
    assert "dry submission: sbatch --test-only accepted the job" in out
    assert "  sbatch: Job 1 to start at now" in out


def test_sites_check_reports_a_refused_dry_submission(capsys, fake_bin):
    fake_bin("sbatch", "echo 'sbatch: error: invalid partition specified: debug' >&2; exit 1\n")
    code, out, _ = run(capsys, "sites", "check", "localhost-slurm")
    assert code == 1
    assert "dry submission: sbatch --test-only refused the job (exit code 1)" in out
    assert "invalid partition specified" in out


def test_sites_check_sge_verifies_with_qsub_w_v(capsys, fake_bin):
    fake_bin("qsub", """\
        if [ "$1" = -help ]; then echo "SGE 8.1.9"; exit 0; fi
        [ "$1 $2" = "-w v" ] || exit 9
        echo "verification: found suitable queue(s)"
        """)
    code, out, _ = run(capsys, "sites", "check", "localhost-sge")
    assert code == 0 and "dry submission: qsub -w v accepted the job" in out


def test_sites_check_pbs_refuses_a_grid_engine_qsub(capsys, fake_bin):
    fake_bin("qsub", "echo 'SGE 8.1.9'\n")
    code, out, _ = run(capsys, "sites", "check", "localhost-pbs")
    assert code == 1 and "is Grid Engine's (SGE 8.1.9), not PBS's" in out


def test_sites_check_pbs_over_slurm_uses_sbatch_beside_qsub(capsys, fake_bin):
    fake_bin("qsub", "# slurm-wlm-torque: use Slurm;\necho 'usage: qsub [-a start_time]'\n")
    fake_bin("sbatch", '[ "$1" = --test-only ] && grep -q "^#PBS -l select=1:ncpus=1:mpiprocs=1" "$2"\n')
    code, out, _ = run(capsys, "sites", "check", "localhost-pbs")
    assert code == 0
    assert "sbatch --test-only accepted the job (qsub is slurm-wlm-torque's wrapper over Slurm)" in out


def test_sites_check_without_the_scheduler_commands(capsys, fake_bin):
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
