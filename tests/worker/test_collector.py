"""The worker's side of a collector job: ``bash submit.sh`` where CAF's Local runs it, once."""
from __future__ import annotations

from caf_hpc import protocol
from caf_hpc.worker.collector import supervise


def _task(directory, key="caf-collector-t-1"):
    return protocol.CollectorTask(key, "t", str(directory), str(directory), ("CollectorOutput.root",), "unused", {})


def test_a_job_runs_its_script_with_its_output_beside_it(tmp_path):
    (tmp_path / "submit.sh").write_text("echo $PWD; echo oops >&2; touch CollectorOutput.root; exit 0\n")
    published: list = []
    ended = supervise(_task(tmp_path), published.append)
    assert ended.returncode == 0 and ended.outputs == (str(tmp_path / "CollectorOutput.root"),)
    assert (tmp_path / "stdout").read_text().strip() == str(tmp_path) and "oops" in (tmp_path / "stderr").read_text()
    assert [type(r).__name__ for r in published] == ["Started"]


def test_a_job_that_ended_is_not_run_again_when_dask_computes_its_task_again(tmp_path):
    """Dask computes a finished task again when the worker holding its result is lost while the backend
    still holds the future: the job, whose outputs CAF may be reading, must not start again."""
    (tmp_path / "submit.sh").write_text("echo ran >> runs; touch CollectorOutput.root; exit 3\n")
    first = supervise(_task(tmp_path), lambda record: None)
    again = supervise(_task(tmp_path), lambda record: None)
    assert (tmp_path / "runs").read_text() == "ran\n"
    assert first.returncode == again.returncode == 3 and again.outputs == first.outputs
    other = supervise(_task(tmp_path, key="caf-collector-t-2"), lambda record: None)  # another submission runs
    assert other.returncode == 3 and (tmp_path / "runs").read_text() == "ran\nran\n"
