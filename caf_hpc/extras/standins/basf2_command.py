"""The stand-in ``basf2`` command: ``basf2 [--job-information FILE] STEERING_FILE [ARGS...]``.

It runs the steering file as ``__main__`` with ``sys.argv`` set as basf2 sets it, and with
``--job-information`` writes a JSON summary at the end, as basf2 does. Its exit code is
the steering file's: 0, the code of a ``sys.exit``, or 1 for an exception (whose
traceback goes to stderr, as basf2's does).
"""
from __future__ import annotations

import argparse
import json
import runpy
import sys
import traceback


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="basf2", description="basf2 stand-in: run a steering file")
    parser.add_argument("--job-information", metavar="FILE", help="write a JSON summary of the job to FILE")
    parser.add_argument("steering", help="the steering file")
    parser.add_argument("arguments", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    sys.argv = [options.steering, *options.arguments]
    code = 0
    try:
        runpy.run_path(options.steering, run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if exit_.code is not None and not isinstance(exit_.code, int):
            print(exit_.code, file=sys.stderr)
    except BaseException:  # a steering file's failure is its exit code, as under basf2
        traceback.print_exc()
        code = 1
    if options.job_information:
        with open(options.job_information, "w") as handle:
            json.dump({"steering_file": options.steering, "exit_status": code}, handle)
    return code


if __name__ == "__main__":
    sys.exit(main())
