"""Factories and preload functions named ``module:function`` from a module beside the steering
script: the module is imported on the worker for real, its top-level code included.

Each test is a real steering script, run as its own process, with the user's module beside
it and not installed; the module declares its C++ classes with ``ROOT.gInterpreter.Declare``
when it is imported, as a user's module does. Calibrations run in threads, as CAF runs
them, for two iterations each (the first asks for another).
"""
from __future__ import annotations

import os
import subprocess
import sys

# The user's module: the base class and its algorithm are declared at import time; ``declare``
# (the preload's function) adds what only it declares, so that both must have run on the worker.
MY_ALGORITHMS = r'''
import ROOT
from caf_hpc.extras.standins import cpp

cpp.load()  # the CalibrationAlgorithm stand-in, as basf2's own library would be
ROOT.gInterpreter.Declare("""
namespace Belle2 {
  class DependentCalibrationAlgorithm : public CafHpc::CalibrationAlgorithm {
  public:
    DependentCalibrationAlgorithm() : CafHpc::CalibrationAlgorithm("DemoCollector") {}
    void setTag(const std::string& tag) { m_tag = tag; }
    std::string getTag() const { return m_tag; }
  protected:
    EResult calibrate() override
    {
      std::cout << "DEPENDENT tag=" << m_tag << " iteration=" << getIteration() << std::endl;
      if (getIteration() > 0) {  // reads what iteration 0 committed
        CafHpc::PayloadData previous;
        if (!getPayload("Dependent", getRunList().front(), previous)) {
          std::cerr << "DEPENDENT no payload from iteration 0" << std::endl;
          return c_Failure;
        }
        std::cout << "DEPENDENT read iteration " << previous["iteration"][0] << std::endl;
      }
      saveCalibration({{"iteration", {double(getIteration())}}}, "Dependent");
      return getIteration() == 0 ? c_Iterate : c_OK;
    }
  private:
    std::string m_tag = "unset";
  };
}
""")


def make_dependent():
    algorithm = ROOT.Belle2.DependentCalibrationAlgorithm()
    algorithm.setTag("from-factory")
    return algorithm


def declare():
    ROOT.gInterpreter.Declare("namespace Belle2 { int declaredByPreloadFunction() { return 42; } }")
'''

STEERING = r'''
import pathlib, sys, threading, time
import ROOT
from caf_hpc import runner_for
from caf_hpc.extras.demo import simulate
from caf_hpc.extras.standins.driver import run_calibration
from caf_hpc.extras.standins.framework import Algorithm
from caf_hpc.extras.standins.strategies import AlgorithmStrategy, SingleIOV
import my_algorithms

MODE = sys.argv[1]
here = pathlib.Path(__file__).resolve().parent
files = simulate.simulate(here / "collector", runs_per_experiment=2, experiments=(1,), output_format="root")
if MODE == "factory":
    runner = runner_for(factories={"DependentCalibration": "my_algorithms:make_dependent"})
else:
    runner = runner_for(preload=["my_algorithms:declare"])


class CheckingSingleIOV(SingleIOV):
    """SingleIOV, after saying what the worker's process has of the module's declarations."""

    def run(self, iov, iteration, queue):
        import ROOT
        print("PRELOAD-FUNCTION", ROOT.Belle2.declaredByPreloadFunction() if MODE == "preload" else "-", flush=True)
        super().run(iov, iteration, queue)


def calibration(name):
    algorithm = Algorithm(ROOT.Belle2.DependentCalibrationAlgorithm())
    algorithm.name = "DependentCalibration"
    algorithm.algorithm.setTag(name)  # travels with the object when no factory rebuilds it
    algorithm.strategy = CheckingSingleIOV
    outcomes = run_calibration(runner, name, [algorithm], files, here / "calibration" / name)
    lines = [f"OUTCOME {name} {o.iteration} {o.final_state} {type(o.error).__name__} "
             f"{[r.result for r in o.results.get('DependentCalibration', [])]} {o.error}" for o in outcomes]
    sys.stdout.write("\n".join(lines) + "\n")


# as CAF does: a thread per calibration, the main thread polling them
threads = [threading.Thread(target=calibration, args=(f"cal{i}",)) for i in range(3)]
for thread in threads:
    thread.start()
while any(thread.is_alive() for thread in threads):
    time.sleep(0.1)
'''

CALIBRATIONS = ("cal0", "cal1", "cal2")


def _run_steering(directory, mode, cwd):
    (directory / "my_algorithms.py").write_text(MY_ALGORITHMS)
    (directory / "steering.py").write_text(STEERING)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CAF_HPC_PRELOAD")}
    result = subprocess.run([sys.executable, str(directory / "steering.py"), mode], cwd=cwd, capture_output=True,
                            text=True, timeout=400, env=dict(env, CAF_HPC_WORKERS="2"))
    return result.stdout + result.stderr


def _log(directory, name, iteration):
    return (directory / "calibration" / name / str(iteration) / "algorithm_output" / "DependentCalibration_stdout")


def test_factory_from_a_module_beside_the_script_runs_with_the_module_imported_on_the_worker(root, tmp_path):
    """The issue's script, run from its own directory: the factory's module declares the class when
    imported, and the worker imports it (it used to get only the function, by value, and failed with
    "'Belle2::DependentCalibrationAlgorithm' is not a known C++ class")."""
    terminal = _run_steering(tmp_path, "factory", cwd=tmp_path)
    for name in CALIBRATIONS:
        assert f"OUTCOME {name} 0 COMPLETED NoneType [1] None" in terminal, terminal
        assert f"OUTCOME {name} 1 COMPLETED NoneType [0] None" in terminal, terminal
        first, second = _log(tmp_path, name, 0).read_text(), _log(tmp_path, name, 1).read_text()
        assert "DEPENDENT tag=from-factory iteration=0" in first, first  # built by the factory on the worker
        assert "DEPENDENT tag=from-factory iteration=1" in second and "DEPENDENT read iteration 0" in second, second
    assert "is not a known C++ class" not in terminal


def test_preload_function_from_a_module_beside_the_script_runs_with_the_module_imported(root, tmp_path):
    """Run from another directory, as a batch worker's is: only the runner can bring the module to the
    workers. The object travels by value with its setting; the preload declared its class there."""
    script_dir = tmp_path / "steering"
    script_dir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    terminal = _run_steering(script_dir, "preload", cwd=elsewhere)
    for name in CALIBRATIONS:
        assert f"OUTCOME {name} 0 COMPLETED NoneType [1] None" in terminal, terminal
        assert f"OUTCOME {name} 1 COMPLETED NoneType [0] None" in terminal, terminal
        log = _log(script_dir, name, 1).read_text()
        assert "PRELOAD-FUNCTION 42" in log, log  # declare() ran on the worker
        assert f"DEPENDENT tag={name} iteration=1" in log and "DEPENDENT read iteration 0" in log, log
    assert "failed on this worker" not in terminal
