"""``package.module:function`` names, as factories, preload entries and collector modules give functions.

``pkgutil.resolve_name`` does the resolving (the module imported, then the attribute path
after the colon followed); this module only adds the checks that make a mistake read as one:
the form, a module that cannot be imported, a name the module lacks, something that is not
a function, each named with the spec that has it.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from typing import Any

FORM = "'package.module:function'"
_SPEC = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class FunctionNameError(ValueError):
    """A ``package.module:function`` name that names no function; the message says which part is wrong."""


def module_name(entry: str) -> str:
    """The module of ``package.module`` or of ``package.module:function``."""
    return entry.partition(":")[0]


def check_form(spec: str) -> None:
    """Raises ``FunctionNameError`` unless ``spec`` has the form ``package.module:function``."""
    if not isinstance(spec, str) or not _SPEC.match(spec):
        raise FunctionNameError(f"{spec!r} is not of the form {FORM}")


def resolve_function(spec: str) -> Callable[..., Any]:
    """The function named ``package.module:function``, its module imported (for real) first.

    The module is imported on its own before ``pkgutil.resolve_name`` follows the name, so
    that an error in the module's own code is reported as what it is, not as a missing name.
    """
    check_form(spec)
    module = module_name(spec)
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise FunctionNameError(f"{spec!r}: cannot import module {module!r} ({err})") from err
    try:
        target = pkgutil.resolve_name(spec)
    except AttributeError as err:
        raise FunctionNameError(f"{spec!r}: module {module!r} has no {spec.partition(':')[2]!r} ({err})") from err
    if not callable(target):
        raise FunctionNameError(f"{spec!r} names {type(target).__name__} {target!r}, not a function")
    return target
