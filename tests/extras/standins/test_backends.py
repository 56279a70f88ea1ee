"""The stand-in ``caf.backends``: the Job model CAF's collector step relies on, and its ``Local`` backend."""
from __future__ import annotations

import json
import pickle

import pytest

from caf_hpc.extras.standins import collection, collector, release
from caf_hpc.extras.standins.backends import (
    ArgumentsGenerator,
    ArgumentsSplitter,
    BackendError,
    Job,
    Local,
    MaxFilesSplitter,
    MaxSubjobsSplitter,
    Result,
)


def test_a_parent_takes_the_lowest_status_of_its_subjobs():
    job = Job("j")
    for i in range(3):
        job.create_subjob(i)
    job.subjobs[0].status = "completed"
    job.subjobs[1].status = "failed"
    job.subjobs[2].status = "running"
    assert job.status == "running"
    job.subjobs[2].status = "completed"
    assert job.status == "failed"
    with pytest.raises(BackendError, match="no job status"):
        job.status = "finished"


def test_ready_is_cached_once_an_exit_status_was_seen():
    job = Job("j")
    job.result = Result(job)
    assert not job.ready()
    job.status = "completed"
    assert job.ready()
    job._status = "running"  # CAF's Result never looks again
    assert job.ready()


def test_splitters_share_files_as_cafs_do(tmp_path):
    job = Job("j")
    job.input_files = [f"file:///f{i}" for i in range(11)]
    MaxSubjobsSplitter(max_subjobs=4).create_subjobs(job)
    assert [len(sj.input_files) for sj in job.subjobs.values()] == [3, 3, 3, 2]
    job2 = Job("k")
    job2.input_files = [f"file:///f{i}" for i in range(5)]
    MaxFilesSplitter(max_files_per_subjob=2).create_subjobs(job2)
    assert [sj.input_files for sj in job2.subjobs.values()] == [("file:///f0", "file:///f1"),
                                                               ("file:///f2", "file:///f3"), ("file:///f4",)]
    job3 = Job("a")
    job3.input_files = ["file:///x"]
    ArgumentsSplitter(arguments_generator=ArgumentsGenerator(lambda n: ((i,) for i in range(n)), 3),
                      max_subjobs=5).create_subjobs(job3)
    assert [sj.args for sj in job3.subjobs.values()] == [[0], [1], [2]]
    assert job3.subjobs[1].name == "a_1" and job3.subjobs[1].working_dir == job3.working_dir / "1"


def test_arguments_splitter_without_max_subjobs_has_no_maximum():
    """CAF documents ``max_subjobs=None`` (its default) as "no maximum"; CAF's own comparison with
    None raises TypeError, the stand-in follows the intent."""
    job = Job("a")
    ArgumentsSplitter(arguments_generator=ArgumentsGenerator(lambda n: ((i,) for i in range(n)), 4)
                      ).create_subjobs(job)
    assert [sj.args for sj in job.subjobs.values()] == [[0], [1], [2], [3]]
    with pytest.raises(BackendError, match="more than max_subjobs=2"):
        ArgumentsSplitter(arguments_generator=ArgumentsGenerator(lambda n: ((i,) for i in range(n)), 4),
                          max_subjobs=2).create_subjobs(Job("b"))


def test_a_subjob_does_not_survive_pickling_so_no_backend_may_ship_one():
    job = Job("j")
    job.create_subjob(0)
    with pytest.raises(RecursionError):
        pickle.loads(pickle.dumps(job.subjobs[0]))


def test_json_round_trip_keeps_the_subjobs_but_not_their_statuses(tmp_path):
    job = Job("j")
    job.input_files = ["file:///a", "file:///b"]
    job.cmd = ["basf2", "x.py"]
    MaxFilesSplitter(max_files_per_subjob=1).create_subjobs(job)
    job.subjobs[0].status = "completed"
    job.dump_to_json(tmp_path / "j.json")
    back = Job.from_json(tmp_path / "j.json")
    assert sorted(back.subjobs) == [0, 1] and back.subjobs[0].status == "init"
    assert json.loads((tmp_path / "j.json").read_text())["cmd"] == ["basf2", "x.py"]


def test_basf2_setup_needs_belle2_tools(monkeypatch):
    monkeypatch.delenv("BELLE2_TOOLS", raising=False)
    with pytest.raises(BackendError, match="BELLE2_TOOLS"):
        Job("j").append_current_basf2_setup_cmds()


@pytest.fixture
def collector_inputs(tmp_path, monkeypatch):
    """A stand-in basf2 release in the environment and six small input files."""
    for name, value in release.environment(release.make_tools(tmp_path / "tools")).items():
        monkeypatch.setenv(name, value)
    files = []
    for i in range(6):
        path = tmp_path / "raw" / f"raw{i}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text("hit\n" * (i + 1))
        files.append(path)
    return files


def test_cafs_local_backend_runs_the_collector_step_and_is_seen_only_at_a_full_update(tmp_path, collector_inputs):
    """The reference the Dask backend is measured against: CAF's Local never says running, and its
    jobs are seen done at the next full update, not when they end."""
    path = collector.create_path().add_module("caf_hpc.extras.standins.collector:count_entries")
    job = collection.collector_job("Cal", "hits", 0, tmp_path / "out", collector_inputs, path)
    backend = Local(max_processes=2)
    try:
        outcome = collection.run_collector_step(backend, [job], heartbeat=0.2, full_update_interval=1.0, timeout=60)
    finally:
        backend.join()
    assert outcome.state == "completed" and not outcome.missing
    assert outcome.full_updates >= 1
    counts = sorted(json.loads(open(f).read())["entries"].popitem()[1] for f in outcome.outputs)
    assert counts == [1, 2, 3, 4, 5, 6]
    first = job.subjobs[0].working_dir
    for name in ("submit.sh", "stdout", "stderr", "__BACKEND_CMD_EXIT_STATUS__", "__BACKEND_INPUT_FILES__.json",
                 "collector_config.json", "run_collector_path.py", "Collector.path"):
        assert (first / name).exists(), name
    assert (first / "__BACKEND_CMD_EXIT_STATUS__").read_text().strip() == "0"
    assert (tmp_path / "out" / "Cal" / "0" / "collector_input" / "hits" / "collector_job.json").exists()
