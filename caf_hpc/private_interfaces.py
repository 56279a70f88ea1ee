"""Every private interface of Python or cloudpickle that caf-hpc uses, in one place, each with why.

Dask's are in ``caf_hpc.dask_adapter``; these are the others. Each function says what the
public interface lacks, and names the test that fails when a release changes what it
relies on (``tests/test_private_interfaces.py`` checks each directly, and the named test
checks what caf-hpc does with it).
"""
from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any


def code_reduce(code: types.CodeType) -> tuple:
    """cloudpickle's own ``(rebuild, args)`` for a code object it ships by value.

    ``cloudpickle.cloudpickle._code_reduce``: cloudpickle writes ``<dynamic-code>`` as the file
    name of every function it pickles by value, and has no option to keep the real one. The
    shipping pickler (``steering.shipping``) takes cloudpickle's arguments and puts the real
    file name back, so that a traceback in an algorithm's log names the user's file and line.
    Tested by ``tests/steering/test_runner_failures.py::
    test_traceback_of_code_shipped_by_value_names_its_file_and_line``.
    """
    from cloudpickle import cloudpickle

    return cloudpickle._code_reduce(code)


def register_before_thread_join(hook: Callable[[], None]) -> bool:
    """Has the interpreter call ``hook()`` after the main thread ended, before it joins the other threads.

    ``threading._register_atexit`` (CPython 3.9 and later; ``concurrent.futures`` stops its
    workers through it): ``atexit`` runs only after the non-daemon threads were joined, too
    late for CAF's calibration threads, which would wait for their strategies for hours after
    Ctrl-C (``caf_hpc.interrupt``). Hooks run last-registered first. Returns False where the
    interpreter has no such hook or is already shutting down (Ctrl-C then waits for the
    threads, as Python does). Tested by ``tests/steering/test_interrupt.py::
    test_ctrl_c_with_calibrations_in_threads_is_one_line_ends_them_at_once_and_leaves_nothing``.
    """
    import threading

    register: Any = getattr(threading, "_register_atexit", None)
    if register is None:
        return False
    try:
        register(hook)
    except RuntimeError:  # imported while the interpreter is already shutting down
        return False
    return True


def run_exit_hooks() -> None:
    """Runs the ``atexit`` hooks now, as a normal interpreter exit would.

    ``atexit._run_exitfuncs``: a child forked by the worker's fork server ends by
    ``os._exit`` (``sys.exit`` would unwind into the server's loop), which skips the hooks
    that the strategy, ROOT or basf2 registered; ``atexit`` has no public call that runs
    them. Called by ``child.process.exit_forked``. Tested by ``tests/test_private_interfaces.py::
    test_a_forked_child_runs_its_atexit_hooks_at_its_end``.
    """
    import atexit

    atexit._run_exitfuncs()
