"""Collector jobs for the backend's tests: a stand-in basf2 release and small input files."""
from __future__ import annotations

from pathlib import Path

from caf_hpc.extras.standins import collection, collector, release
from caf_hpc.extras.standins.backends import Job, MaxFilesSplitter


def stand_in_release(tmp_path: Path, monkeypatch) -> Path:
    """A stand-in basf2 release, set up in this process's environment as a basf2 setup would be."""
    tools = release.make_tools(tmp_path / "tools")
    for name, value in release.environment(tools).items():
        monkeypatch.setenv(name, value)
    return tools


def input_files(directory: Path, count: int) -> list:
    files = []
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        path = directory / f"raw{i}.txt"
        path.write_text("hit\n" * (i + 1))
        files.append(path)
    return files


def counting_job(root: Path, files: list, name: str = "hits", **params) -> Job:
    """CAF's collector job for a collection whose collector counts each file's lines (``count_entries``)."""
    path = collector.create_path().add_module("caf_hpc.extras.standins.collector:count_entries", **params)
    return collection.collector_job("Cal", name, 0, root, files, path)


def shell_job(root: Path, name: str, command: str, n_subjobs: int) -> Job:
    """A Job of ``n_subjobs`` subjobs that each run ``command`` in bash, without basf2 (for volume)."""
    job = Job(name)
    job.working_dir = job.output_dir = root / name
    job.input_files = [str(f) for f in input_files(root / f"{name}-inputs", n_subjobs)]
    job.cmd = ["bash", "-c", f"'{command}'"]
    job.splitter = MaxFilesSplitter(max_files_per_subjob=1)
    job.output_patterns = ["CollectorOutput.root"]
    return job
