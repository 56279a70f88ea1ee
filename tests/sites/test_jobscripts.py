"""Golden job scripts: the exact batch script of each scheduler, with and without a container.

Only what must vary between machines is normalised: the temporary directory (which
holds HOME, the working directory and the images) and the Python executable. Any
other difference fails. ``CAF_HPC_UPDATE_GOLDEN=1`` rewrites the golden files.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dask
import pytest
import yaml

from caf_hpc.sites import load_site, schedulers
from caf_hpc.sites.jobscript import job_script, submit_command

pytestmark = pytest.mark.timeout(20)

GOLDEN = Path(__file__).parent / "golden" / "jobscripts"

COMMON = """\
  cores: 2
  processes: 1
  memory: "4GB"
  death_timeout: 120
  log_directory: ~/logs/{name}
  job_script_prologue: ["source /cvmfs/belle.cern.ch/tools/b2setup release-08"]
"""

#: One file per batch scheduler: ``site`` (the scheduler and its own cluster keys) and ``container`` (a section
#: to add), each completed with COMMON. A new scheduler's module needs its file here; its golden scripts are
#: then written once with CAF_HPC_UPDATE_GOLDEN=1 and read before they are committed.
CASE_FILES = Path(__file__).parent / "golden" / "sites"


def golden_case(scheduler: str) -> dict:
    path = CASE_FILES / f"{scheduler}.yaml"
    assert path.is_file(), (f"scheduler {scheduler} has no golden job script case: write {path} (see the "
                            "others there), then run this test with CAF_HPC_UPDATE_GOLDEN=1 and read the scripts")
    return yaml.safe_load(path.read_text())


CASES = [(s, False) for s in schedulers.batch_names()] + [(s, True) for s in schedulers.batch_names()]


@pytest.fixture
def machine(isolated_sites, tmp_path, monkeypatch):
    """A home and working directory under tmp_path, an image file, and dask-jobqueue's own defaults only."""
    home, work = tmp_path / "home", tmp_path / "work"
    (home / "images").mkdir(parents=True)
    (home / "images" / "belle2.sif").write_bytes(b"")
    work.mkdir()
    monkeypatch.chdir(work)
    defaults = {name: schedulers.get(name).defaults() for name in schedulers.batch_names()}
    raw = {name: {k.replace("_", "-"): v for k, v in section.items()} for name, section in defaults.items()}
    with dask.config.set({f"jobqueue.{name}": section for name, section in raw.items()}):
        yield tmp_path


def normalise(text: str, tmp_path: Path) -> str:
    return text.replace(str(tmp_path), "<TMP>").replace(sys.executable, "<PYTHON>")


def test_every_golden_case_is_a_registered_scheduler():
    """A case file left behind by a scheduler that is gone (or misnamed) would test nothing."""
    assert sorted(path.stem for path in CASE_FILES.glob("*.yaml")) == sorted(schedulers.batch_names())


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.sh"
    if os.environ.get("CAF_HPC_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"no golden file {path}; run with CAF_HPC_UPDATE_GOLDEN=1 to write it"
    assert text == path.read_text()


@pytest.mark.parametrize("scheduler, in_container", CASES,
                         ids=[f"{s}-{'container' if c else 'plain'}" for s, c in CASES])
def test_job_script_matches_golden(machine, scheduler, in_container):
    name = f"{scheduler}-{'container' if in_container else 'plain'}"
    case = golden_case(scheduler)
    text = case["site"] + COMMON.format(name=name) + (case["container"] if in_container else "")
    path = machine / f"{name}.yaml"
    path.write_text(text)
    script = job_script(load_site(str(path)), directories=[str(machine / "work" / "calibration_results")])
    check_golden(name, normalise(script, machine))


@pytest.mark.parametrize("name", ["localhost-slurm", "localhost-pbs", "localhost-sge", "localhost-slurm-podman"])
def test_shipped_localhost_job_script_matches_golden(machine, name):
    check_golden(name, normalise(job_script(load_site(name)), machine))


def test_job_script_without_tls_has_no_tls_arguments(machine):
    path = machine / "plain.yaml"
    path.write_text(golden_case("slurm")["site"] + COMMON.format(name="x") + "security: {tls: false}\n")
    script = job_script(load_site(str(path)))
    assert "tcp://<insert-scheduler-address-here>:8786" in script
    assert "--tls" not in script and "--protocol" not in script


def test_localhost_pbs_submits_with_log_paths_on_the_qsub_command_line(machine):
    logs = machine / "home" / ".caf-hpc" / "logs" / "localhost-pbs"
    assert submit_command(load_site("localhost-pbs")) == f"qsub -o {logs}/%x-%j.out -e {logs}/%x-%j.err"
    assert submit_command(load_site("localhost-slurm")) == "sbatch"


def test_printing_a_job_script_creates_no_tls_files(machine):
    job_script(load_site("localhost-slurm"))
    assert not (machine / "home" / ".caf-hpc" / "tls").exists()


def test_container_words_are_quoted_for_the_shell_but_variables_expand():
    from caf_hpc.sites.container import container_command

    command = container_command({"runtime": "apptainer", "image": "/images/b2.sif",
                                 "binds": ["/data with space", "$TMPDIR"], "options": ["--home=$HOME"]},
                                None, ["/data with space/", "$SCRATCH/x", None, "/work"])
    assert command == ("apptainer exec --bind '/data with space' --bind $TMPDIR --bind /work --home=$HOME "
                       "/images/b2.sif python")


def test_container_values_reach_the_runtime_as_written_not_as_shell(machine, tmp_path):
    """Binds, env and options with spaces and shell metacharacters are quoted: real bash parses the
    job's command line with the runtime replaced by a function that prints its arguments."""
    path = tmp_path / "quoted.yaml"
    path.write_text(
        "scheduler: slurm\n"
        "cluster: {cores: 1, memory: 1GB, walltime: '00:10:00'}\n"
        "container:\n"
        "  runtime: apptainer\n"
        "  image: docker://example/caf-hpc\n"
        "  binds: ['/data with space', '/x;y:/z']\n"
        "  env: ['A=b c', 'B=$(touch /tmp/caf-hpc-quoting-broken)']\n"
        "  options: ['--fakeroot']\n"
        "security: {tls: false}\n")
    script = job_script(load_site(str(path)))
    line = next(line for line in script.splitlines() if line.startswith("apptainer exec"))
    line = line.replace("<insert-scheduler-address-here>", "127.0.0.1")  # as when the cluster starts
    printed = subprocess.run(["bash", "-c", 'apptainer() { printf "%s\\n" "$@"; }; ' + line],
                             capture_output=True, text=True, timeout=30).stdout.splitlines()
    assert printed[:5] == ["exec", "--bind", "/data with space", "--bind", "/x;y:/z"]
    assert printed[printed.index("A=b c") - 1] == "--env"
    assert printed[printed.index("B=$(touch /tmp/caf-hpc-quoting-broken)") - 1] == "--env"
    assert not Path("/tmp/caf-hpc-quoting-broken").exists()
