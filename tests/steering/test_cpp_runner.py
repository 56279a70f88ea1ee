"""C++ algorithms through the runner: output isolated at the C level, objects shipped, ROOT paid once per worker."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from caf_hpc import RunnerError, ShippingError, runner_for
from caf_hpc.extras.standins.framework import Algorithm
from caf_hpc.extras.standins.utils import AlgResult
from tests.helpers.scripted import ok

# A user's module beside the steering script: a C++ algorithm declared with cling, and the
# factory that declares it and builds it on a worker (the module travels by value).
NOISY_MODULE = '''
import ROOT
from caf_hpc.extras.standins import cpp

CODE = r"""
#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
class NoisyAlgorithm : public CafHpc::CalibrationAlgorithm {
public:
  NoisyAlgorithm(const std::string& tag, const std::string& ending)
    : CafHpc::CalibrationAlgorithm("DemoCollector"), m_tag(tag), m_ending(ending)
  { std::printf("MARK-%s-constructed on pid %d\\n", m_tag.c_str(), int(getpid())); }
protected:
  EResult calibrate() override
  {
    std::cout << "MARK-" << m_tag << "-cout-without-newline";
    std::printf("MARK-%s-printf-without-flush", m_tag.c_str());
    std::cerr << "MARK-" << m_tag << "-cerr" << std::endl;
    if (m_ending == "raise") throw std::runtime_error("MARK-" + m_tag + "-exception");
    if (m_ending == "abort") std::abort();
    return c_OK;
  }
private:
  std::string m_tag, m_ending;
};
"""


def make(tag, ending):
    cpp.load()
    cpp.declare(CODE, "NoisyAlgorithm")
    return ROOT.NoisyAlgorithm(tag, ending)
'''

STEERING = '''
import functools, pathlib, sys
from caf_hpc import runner_for
from caf_hpc.extras.demo import cpp_algorithms, simulate
from caf_hpc.extras.standins.driver import run_algorithms
from caf_hpc.extras.standins.framework import Algorithm
import noisy

files = simulate.simulate("collector", runs_per_experiment=2, experiments=(1,), output_format="root")
for ending in ("normal", "raise", "abort"):
    tags = [f"{ending}A", f"{ending}B"]
    algorithms = [Algorithm(noisy.make(tag, ending)) for tag in tags]
    # Both objects are NoisyAlgorithm; CAF names algorithms by class, so give each its own name.
    for algorithm, tag in zip(algorithms, tags):
        algorithm.name = tag
    runner = runner_for(factories={tag: functools.partial(noisy.make, tag, ending) for tag in tags})
    outcome = run_algorithms(runner, ending, algorithms, files, pathlib.Path("calibration", ending))
    print("OUTCOME", ending, outcome.final_state, type(outcome.error).__name__, flush=True)
'''

#: Written by the algorithm on the worker (its constructor also runs in the steering script, which prints there).
MARKS = ("cout-without-newline", "printf-without-flush", "cerr")


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory):
    """Runs the steering script once (a local cluster of its own); returns its directory and terminal output."""
    directory = tmp_path_factory.mktemp("steering")
    (directory / "noisy.py").write_text(NOISY_MODULE)
    (directory / "steering.py").write_text(STEERING)
    result = subprocess.run([sys.executable, "steering.py"], cwd=directory, capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, CAF_HPC_WORKERS="2"))
    return directory, result.stdout + result.stderr


def _log(directory, ending, tag):
    return (directory / "calibration" / ending / "0" / "algorithm_output" / f"{tag}_stdout").read_text()


@pytest.mark.parametrize("ending", ["normal", "raise", "abort"])
def test_cpp_output_of_every_stream_lands_in_its_own_log_and_nowhere_else(root, noisy_run, ending):
    directory, terminal = noisy_run
    first = f"{ending}A"
    log = _log(directory, ending, first)
    assert f"MARK-{first}-constructed on pid" in log  # by the factory, on the worker
    for mark in MARKS:  # std::cerr is tied to std::cout: writing it flushes the unended line first
        assert f"MARK-{first}-{mark}" in log, log
        assert f"MARK-{first}-{mark}" not in terminal
    if ending == "raise":
        assert f"MARK-{first}-exception" in log and "OUTCOME raise FAILED RunnerError" in terminal
    elif ending == "abort":
        assert "OUTCOME abort FAILED RunnerError" in terminal
    else:
        assert "OUTCOME normal COMPLETED NoneType" in terminal, terminal
        second = _log(directory, ending, f"{ending}B")
        assert f"MARK-{ending}B-cerr" in second and f"MARK-{first}" not in second


def test_basf2_log_switch_erases_no_cpp_output_and_keeps_the_order(root, noisy_run):
    """CAF's strategy switches basf2 logging to this very file (truncating) after the C++
    object was built on the worker, and logs through its own offset meanwhile."""
    directory, _ = noisy_run
    log = _log(directory, "normal", "normalA")
    built, executing = log.index("MARK-normalA-constructed"), log.index("Executing normalA")
    assert built < executing < log.index("MARK-normalA-cout-without-newline")


def test_cpp_object_of_a_class_declared_only_here_is_refused_before_submission(root, calibrate):
    from caf_hpc.extras.demo import cpp_algorithms

    outcome = calibrate([Algorithm(cpp_algorithms.make("GainCalibration"))], runner=runner_for(n_workers=1))
    assert isinstance(outcome.error, ShippingError)
    message = str(outcome.error)
    assert "CafHpcDemo::GainCalibration" in message and "no dictionary" in message
    assert "factories=" in message and "preload=" in message
    assert outcome.results == {}  # nothing was submitted


def test_cpp_object_travels_with_its_settings_to_workers_that_preload_its_class(root, calibrate, tmp_path):
    from caf_hpc.extras.demo import cpp_algorithms, simulate

    files = simulate.simulate(tmp_path / "collector", runs_per_experiment=2, experiments=(1,), output_format="root")
    algorithm = cpp_algorithms.make_algorithms()[0]  # PedestalCalibration, run by run
    algorithm.algorithm.setMinHits(1000)  # more than the 100 events a run has: only this setting can say so
    outcome = calibrate([algorithm], input_files=files, runner=runner_for(preload=[cpp_algorithms.PRELOAD]))
    assert outcome.final_state == "COMPLETED", outcome.error
    assert [r.result for r in outcome.results["PedestalCalibration"]] == [AlgResult.not_enough_data] * 2
    assert "only 100 pedestal events in run 1,1 (need 1000)" in \
        (outcome.output_dir / "PedestalCalibration_stdout").read_text()


def test_cpp_object_whose_class_the_preload_does_not_declare_fails_naming_the_fix(root, calibrate):
    from caf_hpc.extras.demo import cpp_algorithms

    outcome = calibrate([Algorithm(cpp_algorithms.make("GainCalibration"))],
                        runner=runner_for(preload=["json"], n_workers=1))
    assert isinstance(outcome.error, RunnerError)
    assert "its class is not declared there" in str(outcome.error) and "preload=" in str(outcome.error)


def test_factory_declares_the_class_on_the_worker_and_builds_the_object(root, calibrate, tmp_path):
    from caf_hpc.extras.demo import cpp_algorithms, simulate

    files = simulate.simulate(tmp_path / "collector", runs_per_experiment=2, experiments=(1,), output_format="root")
    outcome = calibrate(cpp_algorithms.make_algorithms(fail="TimeOffsetCalibration"), input_files=files,
                        runner=runner_for(factories=cpp_algorithms.factories(fail="TimeOffsetCalibration")))
    assert outcome.final_state == "FAILED"  # the factory built the failing one as asked
    assert [r.result for r in outcome.results["GainCalibration"]] == [AlgResult.ok]
    assert [r.result for r in outcome.results["TimeOffsetCalibration"]] == [AlgResult.failure]
    assert (outcome.output_dir / "outputdb" / "dbstore_Gains_rev_1.root").exists()


def test_preload_runs_in_the_fork_server_once_not_in_each_strategy(root, calibrate):
    """Both strategies start with ROOT imported and the classes declared, by one server process."""
    from caf_hpc.extras.demo import cpp_algorithms

    probe = ("report_imports", "ROOT", "caf_hpc.extras.demo.cpp_algorithms")
    outcome = calibrate([ok("First", 1, probe, ("report_parent",)), ok("Second", 1, probe, ("report_parent",))],
                        runner=runner_for(preload=[cpp_algorithms.PRELOAD], n_workers=1))
    assert outcome.final_state == "COMPLETED", outcome.error
    logs = [(outcome.output_dir / f"{name}_stdout").read_text() for name in ("First", "Second")]
    for log in logs:
        assert "imported ROOT: True" in log and "imported caf_hpc.extras.demo.cpp_algorithms: True" in log
    parents = [line for log in logs for line in log.splitlines() if line.startswith("parent pid")]
    assert len(parents) == 2 and parents[0] == parents[1]


@pytest.mark.parametrize("fork_server", [True, False], ids=["forked", "fresh-interpreter"])
def test_failed_preload_is_told_in_the_strategy_log_and_the_strategy_still_runs(calibrate, fork_server):
    outcome = calibrate([ok("Survivor", 1)], runner=runner_for(preload=["no_such_module_for_preload"], n_workers=1,
                                                               fork_server=fork_server))
    assert outcome.final_state == "COMPLETED", outcome.error
    log = (outcome.output_dir / "Survivor_stdout").read_text()
    assert "preload 'no_such_module_for_preload' failed on this worker" in log
    assert "ModuleNotFoundError" in log


def _fork_servers_for(preload):
    from caf_hpc.protocol import Preload
    from caf_hpc.worker import forkserver

    server = forkserver._servers.get(Preload.of(preload))
    return server is not None and server.alive


def test_every_worker_starts_its_preload_before_a_strategy_reaches_it(calibrate):
    """One strategy ran, on one worker; the other's fork server for the preload runs all the same."""
    from caf_hpc.steering import clusters

    runner = runner_for(preload=["json"], n_workers=2)
    outcome = calibrate([ok("Only", 1)], runner=runner)
    assert outcome.final_state == "COMPLETED", outcome.error
    client = clusters.client_for(runner.settings())
    client.wait_for_workers(2, timeout=30)  # a worker that joins after run() started gets the plugin too
    assert list(client.run(_fork_servers_for, ("json",)).values()) == [True, True]
