"""With basf2 importable, the runner uses CAF's own classes and basf2's logging; without, its own."""
from __future__ import annotations

import subprocess
import sys
import textwrap

# The smallest basf2/caf that shows which classes and log functions the package picks up.
FAKE_RELEASE = {
    "basf2/__init__.py": "LOGGED = []\n"
                         "def B2INFO(m): LOGGED.append(('INFO', m))\n"
                         "def B2ERROR(m): LOGGED.append(('ERROR', m))\n"
                         "def B2WARNING(m): LOGGED.append(('WARNING', m))\n"
                         "def B2DEBUG(level, m): LOGGED.append(('DEBUG', m))\n",
    "caf/__init__.py": "",
    "caf/runners.py": "class RunnerError(Exception):\n    pass\n"
                      "class AlgorithmsRunner:\n"
                      "    FAILED = 'FAILED'\n    COMPLETED = 'COMPLETED'\n"
                      "    def __init__(self, name):\n        self.name = name\n        self.results = {}\n"
                      "        self.final_state = None\n",
    "caf/utils.py": "from caf_hpc.extras.standins.utils import IoV, IoV_Result, ExpRun\n",
    "caf/backends.py": "class Backend:\n    def __init__(self, *, backend_args=None):\n"
                       "        self.backend_args = dict(backend_args or {})\n"
                       "class Result:\n    def __init__(self, job):\n        self.job = job\n",
    "caf/framework.py": "class CAF:\n    pass\nclass Calibration:\n    pass\n",
}


def test_importing_caf_hpc_never_needs_basf2():
    code = ("import caf_hpc, caf_hpc.steering.runner, sys; "
            "print('basf2' in sys.modules, caf_hpc.basf2_compat.HAVE_BASF2)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_real_caf_classes_and_b2_logging_are_used_when_basf2_imports(tmp_path):
    for path, text in FAKE_RELEASE.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    code = textwrap.dedent("""
        import basf2, caf.runners
        from caf_hpc import DaskAlgorithmsRunner, RunnerError
        from caf_hpc import basf2_compat
        basf2_compat.log_info("hello")
        print(issubclass(DaskAlgorithmsRunner, caf.runners.AlgorithmsRunner),
              RunnerError is caf.runners.RunnerError, basf2.LOGGED == [("INFO", "caf-hpc: hello")])
        import sys
        print("caf.backends" in sys.modules)  # not imported for the runner: it imports ROOT
        import caf.backends
        from caf_hpc import DaskBackend
        print(isinstance(DaskBackend.__new__(DaskBackend), caf.backends.Backend))  # what CAF.backend accepts
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.stdout.split() == ["True", "True", "True", "False", "True"], done.stderr


def test_a_steering_script_gets_cafs_own_names_with_basf2_and_the_stand_ins_without(tmp_path):
    for path, text in FAKE_RELEASE.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    code = textwrap.dedent("""
        import sys
        from caf_hpc import basf2_compat
        import caf_hpc.steering.runner
        print("caf.framework" in sys.modules or "caf_hpc.extras.standins.caf" in sys.modules)  # not before use
        from caf_hpc.basf2_compat import CAF, Calibration
        print(CAF.__module__, Calibration.__module__)
    """)
    with_basf2 = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                                env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert with_basf2.stdout.split() == ["False", "caf.framework", "caf.framework"], with_basf2.stderr
    without = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert without.stdout.split() == ["False", "caf_hpc.extras.standins.caf", "caf_hpc.extras.standins.framework"], \
        without.stderr
