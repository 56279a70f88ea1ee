"""``package.module:function`` names resolve through pkgutil.resolve_name, and a wrong one says what is wrong."""
from __future__ import annotations

import json

import pytest

from caf_hpc.function_names import FunctionNameError, module_name, resolve_function


def test_a_function_and_a_nested_name_resolve():
    assert resolve_function("json:loads") is json.loads
    assert resolve_function("json:JSONDecoder.decode") is json.JSONDecoder.decode
    assert module_name("a.b:c") == "a.b" and module_name("a.b") == "a.b"


@pytest.mark.parametrize(("spec", "message"), [
    ("json.loads", r"'json.loads' is not of the form 'package.module:function'"),
    ("json:", r"is not of the form"),
    ("no_such_module_here:make", r"'no_such_module_here:make': cannot import module 'no_such_module_here'"),
    ("json:no_such_function", r"'json:no_such_function': module 'json' has no 'no_such_function'"),
    ("json:__doc__", r"'json:__doc__' names str .*, not a function"),
])
def test_a_wrong_name_says_which_part_is_wrong(spec, message):
    with pytest.raises(FunctionNameError, match=message):
        resolve_function(spec)


def test_an_error_in_the_modules_own_code_is_not_taken_for_a_missing_name(tmp_path, monkeypatch):
    (tmp_path / "broken_at_import.py").write_text("raise AttributeError('from the module itself')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(AttributeError, match="from the module itself"):
        resolve_function("broken_at_import:make")


def test_a_stand_in_collector_module_with_a_typo_is_refused_with_its_name():
    from caf_hpc.extras.standins.collector import create_path, register_module

    with pytest.raises(ValueError, match=r"'caf_hpc.extras.standins.collector:count_entires': module .* has no"):
        register_module("caf_hpc.extras.standins.collector:count_entires")
    with pytest.raises(ValueError, match=r"is not of the form 'package.module:function'"):
        create_path().add_module("caf_hpc.extras.standins.collector")
