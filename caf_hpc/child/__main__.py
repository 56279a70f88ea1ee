"""``python -m caf_hpc.child MESSAGE_FD``: a strategy's process started as a fresh interpreter.

Standard input holds two frames: the worker's ``protocol.Preload``, then the ``StrategyCall``.
"""
import sys

from caf_hpc import protocol
from caf_hpc.child.process import run

preload = protocol.loads(protocol.read_frame(sys.stdin.fileno()))
sys.exit(run(int(sys.argv[1]), preload))  # a normal exit, so C stdio buffers are flushed too
