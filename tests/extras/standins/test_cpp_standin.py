"""The C++ CalibrationAlgorithm stand-in, compiled by ROOT's cling: CAF's calls, ROOT files, the database."""
from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import pytest

from caf_hpc.extras.standins import database
from caf_hpc.extras.standins.conditions import conditions
from caf_hpc.extras.standins.utils import AlgResult, ExpRun, IoV, runs_from_vector


@pytest.fixture
def demo(root, tmp_path):
    """The demo's C++ algorithms and two experiments x 3 runs of collector output as ROOT files."""
    from caf_hpc.extras.demo import cpp_algorithms, simulate

    files = simulate.simulate(tmp_path / "collector", runs_per_experiment=3, runs_per_file=2, output_format="root")
    return cpp_algorithms, [str(f) for f in files]


@pytest.fixture
def output_database(tmp_path):
    """The conditions chain CAF sets up before an algorithm runs: the output database first, saving there."""
    database_txt = tmp_path / "outputdb" / "database.txt"
    database_txt.parent.mkdir()
    conditions.reset()
    conditions.prepend_testing_payloads(database_txt)
    conditions.expert_settings(save_payloads=database_txt)
    yield database_txt
    conditions.reset()


def test_collector_output_is_root_files_with_a_tree_per_object_and_run(demo, root):
    _, files = demo
    handle = root.TFile.Open(files[0])
    try:
        tree = handle.Get("DemoCollector/pedestal_events/pedestal_events_1.1")
        assert tree.GetEntries() == 100
        tree.GetEntry(0)
        assert len(tree.adc) == 16
        hits = handle.Get("DemoCollector/signal_hits/signal_hits_1.2")
        assert hits.GetEntries() == 640 and {b.GetName() for b in hits.GetListOfBranches()} == \
            {"exp", "run", "channel", "adc", "time"}
    finally:
        handle.Close()


def test_run_list_comes_from_all_input_files(demo):
    cpp_algorithms, files = demo
    algorithm = cpp_algorithms.make("PedestalCalibration")
    algorithm.setInputFileNames(files)  # a Python list, as CAF's default data_input passes it
    assert list(algorithm.getInputFileNames()) == files
    assert runs_from_vector(algorithm.getRunListFromAllData()) == [ExpRun(e, r) for e in (1, 2) for r in (1, 2, 3)]


def test_execute_takes_cafs_python_runs_and_iov_and_returns_the_code_as_int(demo, output_database):
    cpp_algorithms, files = demo
    algorithm = cpp_algorithms.make("PedestalCalibration")
    algorithm.setInputFileNames(files)
    code = algorithm.execute([ExpRun(1, 2)], 0, IoV(1, 2, 1, 2))
    assert code == AlgResult.ok and type(code) is int
    assert pickle.loads(pickle.dumps(code)) == 0


def test_commit_writes_basf2_database_lines_and_root_payloads_python_reads_back(demo, output_database):
    cpp_algorithms, files = demo
    algorithm = cpp_algorithms.make("PedestalCalibration")
    algorithm.setInputFileNames(files)
    for run in (1, 2):
        assert algorithm.execute([ExpRun(1, run)], 0, ExpRun(1, run).make_iov()) == AlgResult.ok
        assert algorithm.commit()
    assert output_database.read_text().splitlines() == ["dbstore/Pedestals 1 1,1,1,1", "dbstore/Pedestals 2 1,2,1,2"]
    assert (output_database.parent / "dbstore_Pedestals_rev_2.root").exists()
    payload = database.find_payload(output_database, "Pedestals", ExpRun(1, 2))
    assert sorted(payload) == ["events", "noise", "pedestal"]
    assert len(payload["pedestal"]) == 16 and payload["events"] == [100.0]
    assert 170 < payload["pedestal"][0] < 230


def test_revisions_continue_across_python_and_cpp_writers(demo, output_database):
    cpp_algorithms, files = demo
    database.write_payload(output_database.parent, "Pedestals", {"pedestal": [1.0]}, IoV(1, 1, 1, 1))
    algorithm = cpp_algorithms.make("PedestalCalibration")
    algorithm.setInputFileNames(files)
    algorithm.execute([ExpRun(1, 1)], 0, IoV(1, 1, 1, 1))
    algorithm.commit()
    assert [e.revision for e in database.read_entries(output_database)] == [1, 2]
    assert len(database.find_payload(output_database, "Pedestals", ExpRun(1, 1))["pedestal"]) == 16  # later wins


def test_cpp_algorithm_reads_payloads_an_earlier_one_committed(demo, output_database):
    cpp_algorithms, files = demo
    gain = cpp_algorithms.make("GainCalibration")
    gain.setInputFileNames(files)
    runs = [ExpRun(e, r) for e in (1, 2) for r in (1, 2, 3)]
    assert gain.execute(runs, 0, None) == AlgResult.failure  # no pedestals yet
    pedestal = cpp_algorithms.make("PedestalCalibration")
    pedestal.setInputFileNames(files)
    for run in runs:
        pedestal.execute([run], 0, run.make_iov())
        pedestal.commit()
    assert gain.execute(runs, 0, None) == AlgResult.ok


def test_a_cpp_object_unpickles_only_where_its_class_is_declared(demo, tmp_path):
    """What ROOT does with an algorithm object of a class declared only to one interpreter:
    it pickles (ROOT streams its data members), and unpickles where the class is declared
    again, with its settings; elsewhere it cannot be bound to a class."""
    import cloudpickle

    from caf_hpc.extras.standins import cpp

    cpp_algorithms, _ = demo
    algorithm = cpp_algorithms.make("GainCalibration", fail=True)
    algorithm.setMinHits(33)
    assert not cpp.has_dictionary(algorithm)
    with cpp.quiet_streaming():
        (tmp_path / "algorithm.pkl").write_bytes(cloudpickle.dumps(algorithm))
    probe = textwrap.dedent(f"""
        import pickle, sys
        if sys.argv[1] == "declared":
            from caf_hpc.extras.demo import cpp_algorithms
            cpp_algorithms.declare()
        try:
            algorithm = pickle.loads(open({str(tmp_path / 'algorithm.pkl')!r}, "rb").read())
            print("settings", algorithm.getFail(), algorithm.getMinHits())
        except TypeError as err:
            print("TypeError:", err)
    """)
    outputs = {how: subprocess.run([sys.executable, "-c", probe, how], capture_output=True, text=True,
                                   timeout=120).stdout
               for how in ("declared", "undeclared")}
    assert "settings True 33" in outputs["declared"]
    assert "attempt to bind C++ object w/o class" in outputs["undeclared"]
