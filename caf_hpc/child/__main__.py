"""``python -m caf_hpc.child MESSAGE_FD [PRELOAD ...]``: a strategy's process started as a fresh interpreter."""
import sys

from caf_hpc.child.process import run

sys.exit(run(int(sys.argv[1]), sys.argv[2:]))  # a normal exit, so C stdio buffers are flushed too
