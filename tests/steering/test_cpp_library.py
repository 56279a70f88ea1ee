"""C++ algorithms from a library with a ROOT dictionary, the way every basf2 algorithm travels.

A small library of ``CalibrationAlgorithm`` subclasses is built as basf2 builds its own:
``rootcling`` writes the dictionary and a rootmap, the system compiler makes the shared
library. A basf2 setup puts the libraries on ``LD_LIBRARY_PATH`` and their headers on
``ROOT_INCLUDE_PATH`` for every process, workers included; the steering script here runs
with both set that way and the plain runner: no preload, no factory. The objects travel by
value with the settings the script gave them, and each worker's ROOT loads the library by
itself when it unpickles one.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import RUNNER_VARIABLES
from tests.helpers.requirements import require_compiler

LIBRARY = "CafHpcLibraryAlgorithms"

HEADER = r"""#pragma once
#include "CalibrationAlgorithm.h"

#include <iostream>

namespace Belle2 {
  /// Commits its threshold, a setting given in the steering script.
  class ThresholdCalibrationAlgorithm : public CafHpc::CalibrationAlgorithm {
  public:
    ThresholdCalibrationAlgorithm() : CafHpc::CalibrationAlgorithm("DemoCollector") {}
    void setThreshold(int threshold) { m_threshold = threshold; }
    int getThreshold() const { return m_threshold; }
  protected:
    EResult calibrate() override
    {
      std::cout << "LIBRARY ThresholdCalibration threshold=" << m_threshold << " runs=" << getRunList().size()
                << std::endl;
      saveCalibration({{"threshold", {double(m_threshold)}}}, "Threshold");
      return c_OK;
    }
  private:
    int m_threshold = 1;
  };

  /// Reads the threshold the first one committed; fails unless it is the expected one, a setting too.
  class CheckThresholdAlgorithm : public CafHpc::CalibrationAlgorithm {
  public:
    CheckThresholdAlgorithm() : CafHpc::CalibrationAlgorithm("DemoCollector") {}
    void setExpected(int expected) { m_expected = expected; }
  protected:
    EResult calibrate() override
    {
      CafHpc::PayloadData payload;
      if (!getPayload("Threshold", getRunList().front(), payload)) {
        std::cerr << "LIBRARY CheckThreshold: no Threshold payload" << std::endl;
        return c_Failure;
      }
      std::cout << "LIBRARY CheckThreshold read " << payload["threshold"][0] << ", expected " << m_expected
                << std::endl;
      return payload["threshold"][0] == m_expected ? c_OK : c_Failure;
    }
  private:
    int m_expected = -1;
  };
}
"""

LINKDEF = """#ifdef __CLING__
#pragma link off all globals;
#pragma link off all classes;
#pragma link off all functions;
#pragma link C++ class CafHpc::IntervalOfValidity+;
#pragma link C++ class CafHpc::CalibrationAlgorithm+;
#pragma link C++ class Belle2::ThresholdCalibrationAlgorithm+;
#pragma link C++ class Belle2::CheckThresholdAlgorithm+;
#endif
"""


@pytest.fixture(scope="session")
def algorithm_library(tmp_path_factory):
    """Builds lib<LIBRARY>.so, its dictionary and rootmap; returns (lib dir, include dirs) as a basf2 setup
    would put them on LD_LIBRARY_PATH and ROOT_INCLUDE_PATH."""
    from caf_hpc.extras.standins import cpp
    from tests.helpers.requirements import require_root

    ROOT = require_root()
    compiler = require_compiler()
    top = tmp_path_factory.mktemp("library")
    include, lib = top / "include", top / "lib"
    include.mkdir()
    lib.mkdir()
    (include / f"{LIBRARY}.h").write_text(HEADER)
    (lib / "LinkDef.h").write_text(LINKDEF)
    bin_dir, root_include, root_lib = (str(d) for d in (ROOT.gROOT.GetBinDir(), ROOT.gROOT.GetIncludeDir(),
                                                        ROOT.gROOT.GetLibDir()))
    includes = [f"-I{include}", f"-I{cpp.INCLUDE_DIR}"]

    def build(command):
        done = subprocess.run(command, cwd=lib, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}"
        return done.stdout

    # the header by its bare name: the dictionary finds it through ROOT_INCLUDE_PATH, as basf2's do
    build([os.path.join(bin_dir, "rootcling"), "-f", f"G__{LIBRARY}.cxx", "-rmf", f"lib{LIBRARY}.rootmap",
           "-rml", f"lib{LIBRARY}.so", *includes, f"{LIBRARY}.h", "LinkDef.h"])
    flags = [f for f in build(["bash", os.path.join(bin_dir, "root-config"), "--cflags"]).split()
             if not f.startswith("-I")]  # -std=... as ROOT was built; its include directory is named below
    build([compiler, "-shared", "-fPIC", *flags, f"-I{root_include}", *includes, "-o", f"lib{LIBRARY}.so",
           f"G__{LIBRARY}.cxx", f"-L{root_lib}", "-lCore", "-lRIO", "-lTree"])
    return lib, [include, cpp.INCLUDE_DIR]


STEERING = r'''
import pathlib, sys
import ROOT
from caf_hpc import DaskAlgorithmsRunner
from caf_hpc.extras.demo import simulate
from caf_hpc.extras.standins import cpp
from caf_hpc.extras.standins.driver import run_algorithms
from caf_hpc.extras.standins.framework import Algorithm
from caf_hpc.extras.standins.strategies import SingleIOV


class ReportingSingleIOV(SingleIOV):
    """SingleIOV, after saying what the worker's process found: the library loaded by ROOT as it
    unpickled the object, and none of the ways a class can be brought to a worker otherwise."""

    def run(self, iov, iteration, queue):
        import ROOT
        loaded = [lib for lib in str(ROOT.gSystem.GetLibraries()).split() if "LIBRARY" in lib]
        print("WORKER pid", __import__("os").getpid(), "library", loaded, flush=True)
        super().run(iov, iteration, queue)


here = pathlib.Path(__file__).resolve().parent
files = simulate.simulate(here / "collector", runs_per_experiment=2, experiments=(1,), output_format="root")
threshold = Algorithm(ROOT.Belle2.ThresholdCalibrationAlgorithm())
threshold.algorithm.setThreshold(37)  # settings, set here: they must arrive
check = Algorithm(ROOT.Belle2.CheckThresholdAlgorithm())
check.algorithm.setExpected(37)
for algorithm in (threshold, check):
    algorithm.strategy = ReportingSingleIOV
    print("DICTIONARY", algorithm.name, cpp.has_dictionary(algorithm.algorithm))
settings = DaskAlgorithmsRunner.settings()
print("SETTINGS preload", settings.preload, "factories", dict(settings.factories), "steering pid",
      __import__("os").getpid())
outcome = run_algorithms(DaskAlgorithmsRunner, "library", [threshold, check], files, here / "calibration")
print("OUTCOME", outcome.final_state, type(outcome.error).__name__,
      {name: [r.result for r in results] for name, results in outcome.results.items()}, outcome.error)
'''.replace("LIBRARY", LIBRARY)


def test_algorithms_from_a_dictionary_library_travel_with_their_settings_and_no_preload(root, algorithm_library,
                                                                                          tmp_path):
    lib, include_dirs = algorithm_library
    (tmp_path / "steering.py").write_text(STEERING)
    env = {k: v for k, v in os.environ.items() if k not in (*RUNNER_VARIABLES, "PYTHONPATH")}
    env.update(LD_LIBRARY_PATH=os.pathsep.join(filter(None, [str(lib), env.get("LD_LIBRARY_PATH")])),
               ROOT_INCLUDE_PATH=os.pathsep.join(str(d) for d in include_dirs), CAF_HPC_WORKERS="1")
    done = subprocess.run([sys.executable, "steering.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=env)
    terminal = done.stdout + done.stderr
    assert "DICTIONARY ThresholdCalibrationAlgorithm True" in terminal, terminal
    assert "SETTINGS preload () factories {}" in terminal, terminal
    assert ("OUTCOME COMPLETED NoneType {'ThresholdCalibrationAlgorithm': [0], 'CheckThresholdAlgorithm': [0]} None"
            in terminal), terminal
    steering_pid = terminal.split("steering pid ")[1].split()[0]
    output = tmp_path / "calibration" / "0" / "algorithm_output"
    first = (output / "ThresholdCalibrationAlgorithm_stdout").read_text()
    second = (output / "CheckThresholdAlgorithm_stdout").read_text()
    for log in (first, second):
        assert f"library ['{lib / f'lib{LIBRARY}.so'}']" in log, log  # loaded by the worker's ROOT itself
        assert f"WORKER pid {steering_pid} " not in log
    assert "LIBRARY ThresholdCalibration threshold=37 runs=2" in first, first
    assert "LIBRARY CheckThreshold read 37, expected 37" in second, second
    assert (output / "outputdb" / "dbstore_Threshold_rev_1.root").exists()
