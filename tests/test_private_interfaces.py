"""The private interfaces of Python and cloudpickle in ``caf_hpc.private_interfaces``, each checked directly:
a release that changes one fails here first, before the tests of what caf-hpc does with it."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import types

from caf_hpc import private_interfaces


def _sample(x: int) -> int:
    return x + 1


def test_code_reduce_rebuilds_the_code_object_cloudpickle_ships():
    code = _sample.__code__
    rebuild, args = private_interfaces.code_reduce(code)
    rebuilt = rebuild(*args)
    assert isinstance(rebuilt, types.CodeType)
    assert rebuilt.co_code == code.co_code and rebuilt.co_name == "_sample"
    assert "<dynamic-code>" in args  # the file name the shipping pickler puts back (steering.shipping)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)


def test_the_hook_before_thread_join_runs_while_a_non_daemon_thread_still_waits():
    """The hook ends the thread, so the interpreter's exit does not wait the 60 s of the thread's own wait."""
    done = _run("""
        import threading
        from caf_hpc import private_interfaces
        release = threading.Event()
        threading.Thread(target=release.wait, args=(60,)).start()
        print(private_interfaces.register_before_thread_join(lambda: (print("hook"), release.set())))
    """)
    assert done.returncode == 0 and done.stdout.split() == ["True", "hook"], done.stderr


def test_a_forked_child_runs_its_atexit_hooks_at_its_end(tmp_path):
    """``child.process.exit_forked`` ends by ``os._exit`` but runs the hooks first, as an exit would."""
    mark = tmp_path / "mark"
    done = _run(f"""
        import atexit, os
        from caf_hpc.child import process
        pid = os.fork()
        if pid == 0:
            atexit.register(lambda: open({str(mark)!r}, "w").write("hook ran"))
            process.exit_forked(3)
        print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    """)
    assert done.stdout.split() == ["3"], done.stderr
    assert mark.read_text() == "hook ran"
