"""A user's modules beside the steering script reach a worker as source and are imported there for real.

The steering side (``shipping.module_sources``) collects them; the worker side
(``caf_hpc.child.modules``) imports them, in a process that cannot see their directory
(it is deleted before), as a batch worker in a container cannot.
"""
from __future__ import annotations

import pickle
import py_compile
import subprocess
import sys
import textwrap

import pytest

from caf_hpc import ShippingError, protocol
from caf_hpc.steering import shipping

FILES = {
    "calib/__init__.py": "print('TOP-LEVEL calib')\n",
    "calib/algorithms.py": textwrap.dedent("""\
        from . import helpers
        from .helpers import VALUE
        print('TOP-LEVEL calib.algorithms', __name__, __package__)


        def make():
            return helpers.VALUE + VALUE


        def boom():
            raise ValueError("boom from the shipped module")
        """),
    "calib/helpers.py": "VALUE = 21\n",
    "nspace/inner.py": "def answer():\n    return 'namespace package'\n",  # nspace has no __init__.py
    "lonely.py": "import calib.helpers\n\ndef declare():\n    print('DECLARED', calib.helpers.VALUE)\n",
}

WORKER = textwrap.dedent("""\
    import pickle, sys, traceback
    from caf_hpc import function_names
    from caf_hpc.child import modules
    modules.install(pickle.load(open(sys.argv[1], "rb")))
    print("MAKE", function_names.resolve_function("calib.algorithms:make")())
    import calib.algorithms
    print("FILE", calib.algorithms.__file__)
    print("NAMESPACE", function_names.resolve_function("nspace.inner:answer")())
    modules.run_preload("lonely:declare")
    try:
        calib.algorithms.boom()
    except ValueError:
        print(traceback.format_exc())
    """)


@pytest.fixture
def beside(tmp_path, monkeypatch):
    """The user's modules in a directory of their own, importable here as beside a steering script."""
    directory = tmp_path / "steering"
    for name, text in FILES.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    monkeypatch.syspath_prepend(str(directory))
    yield directory
    for name in [n for n in sys.modules if n.split(".")[0] in ("calib", "nspace", "lonely", "sourceless")]:
        del sys.modules[name]


def test_a_package_beside_the_script_is_imported_on_a_worker_that_cannot_see_it(beside, tmp_path):
    import calib.algorithms  # noqa: F401 - as the steering script does
    import lonely  # noqa: F401
    import nspace.inner  # noqa: F401

    factory = shipping.resolve_factory("calib.algorithms:make", "Calib")
    assert isinstance(factory, protocol.Factory)
    sent = {source.name: source for source in factory.modules}
    assert set(sent) >= {"calib", "calib.algorithms", "calib.helpers", "nspace", "nspace.inner", "lonely"}
    assert sent["nspace"].source is None and sent["calib"].is_package and not sent["calib.helpers"].is_package
    (tmp_path / "modules.pickle").write_bytes(pickle.dumps(factory.modules))
    for name in FILES:
        (beside / name).unlink()
    done = subprocess.run([sys.executable, "-c", WORKER, str(tmp_path / "modules.pickle")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.count("TOP-LEVEL calib\n") == 1 and "TOP-LEVEL calib.algorithms calib.algorithms calib" in output
    assert "MAKE 42" in output and f"FILE {beside / 'calib' / 'algorithms.py'}" in output
    assert "NAMESPACE namespace package" in output and "DECLARED 21" in output
    assert 'raise ValueError("boom from the shipped module")' in output, output  # its line, from the sent source


def test_an_installed_module_travels_as_its_name_alone(beside):
    factory = shipping.resolve_factory("json:loads", "Json")
    assert isinstance(factory, protocol.Factory)
    assert factory.spec == "json:loads" and factory.modules == ()
    preload = shipping.preload_for(["json", "no_such_module_anywhere:declare"])
    assert preload.entries == ("json", "no_such_module_anywhere:declare") and preload.modules == ()


def test_a_preload_module_beside_the_script_is_found_and_sent_without_being_imported_first(beside):
    assert "lonely" not in sys.modules
    preload = shipping.preload_for(["lonely:declare"])
    assert {"lonely", "calib", "calib.helpers"} <= {source.name for source in preload.modules}


def test_the_steering_script_itself_is_refused_as_a_factory_module(beside):
    with pytest.raises(ShippingError, match="names the steering script itself.*module beside the script"):
        shipping.resolve_factory("__main__:make", "Calib")
    with pytest.raises(ShippingError, match="preload entry '__main__:declare' names the steering script itself"):
        shipping.preload_for(["__main__:declare"])


def test_a_module_without_source_beside_the_script_is_refused_naming_it(beside):
    source = beside / "sourceless.py"
    source.write_text("def make():\n    return 1\n")
    py_compile.compile(str(source), cfile=str(beside / "sourceless.pyc"))
    source.unlink()
    with pytest.raises(ShippingError, match=r"module 'sourceless' \(.*sourceless.pyc\).*has no Python source"):
        shipping.resolve_factory("sourceless:make", "Sourceless")
