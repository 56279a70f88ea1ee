"""The baselines: the loop of CAF's reference runner, ``SeqAlgorithmsRunner``, written here.

As CAF's contract describes it: for each algorithm in order, a strategy is made and set up
with CAF's six parameters, a child is forked to run it (``chdir`` into ``output_dir``
first, as the real one does), and the child's ``multiprocessing.SimpleQueue`` is polled
every ``poll`` seconds until the final state came or the child is gone. The first FAILED
ends the run; a child that exits non-zero or without a final state is a ``RunnerError``.

``reference(5.0)`` is CAF's own poll; ``reference(0.001)`` is the best a fork-and-poll
design can do on this machine. Both are drop-in ``algorithms_runner`` classes, so every
measure drives them through the same steps as caf-hpc's runner.

For the collector step the baseline is CAF's ``Local`` backend (``local_backend``): a
``multiprocessing`` pool running each subjob's ``bash submit.sh`` in an empty environment,
whose statuses change only when CAF's full update (every 30 s) calls ``update_status``.
The stand-in of ``caf.backends`` models it so (``caf_hpc.extras.standins.backends.Local``);
the measures drive it and caf-hpc's backend through the same driver of CAF's loop.
"""
from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any

from caf_hpc.basf2_compat import AlgorithmsRunner, RunnerError
from caf_hpc.extras.standins.backends import Local

_PARAMETERS = ("database_chain", "dependent_databases", "output_dir", "output_database_dir", "input_files",
               "ignored_runs")


def _child(strategy: Any, iov: Any, iteration: int, queue: Any) -> None:
    os.chdir(strategy.output_dir)
    strategy.run(iov, iteration, queue)


class ReferenceRunner(AlgorithmsRunner):
    """Fork per strategy, ``SimpleQueue``, a poll every ``poll`` s."""

    poll = 5.0

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.ignored_runs: list = []

    def run(self, iov: Any, iteration: int) -> None:
        context = multiprocessing.get_context("fork")
        params = {key: getattr(self, key) for key in _PARAMETERS}
        self.final_state = None
        for algorithm in self.algorithms:
            strategy = algorithm.strategy(algorithm)
            strategy.setup_from_dict(params)
            results = self.results.setdefault(algorithm.name, [])
            results.clear()
            queue = context.SimpleQueue()
            child = context.Process(target=_child, args=(strategy, iov, iteration, queue))
            child.start()
            final_state = None
            while True:
                alive = child.is_alive()  # before the drain: what a child wrote before it ended is read
                while not queue.empty():
                    message = queue.get()
                    if message["type"] == "result":
                        results.append(message["value"])
                    elif message["type"] == "final_state":
                        final_state = message["value"]
                if final_state is not None or not alive:
                    break
                time.sleep(self.poll)
            child.join()
            deadline = time.monotonic() + 10
            while child.exitcode is None and time.monotonic() < deadline:
                # Another thread's Process.start() may reap this child first (multiprocessing's
                # _cleanup polls every child); its exit code is set a moment later.
                child.join(0.01)
            queue.close()
            if child.exitcode != 0 or final_state is None:
                self.final_state = self.FAILED
                raise RunnerError(f"{algorithm.name}: child exited with {child.exitcode}, final state {final_state}")
            if final_state == self.FAILED:
                self.final_state = self.FAILED
                return
        self.final_state = self.COMPLETED


def reference(poll: float) -> type:
    """A ``ReferenceRunner`` class that polls every ``poll`` seconds."""
    return type(f"ReferenceRunner{poll:g}s", (ReferenceRunner,), {"poll": poll})


def local_backend(processes: int) -> Local:
    """CAF's ``Local`` backend with ``processes`` pool processes, started now (CAF makes it as its run starts);
    ``join()`` it when done."""
    return Local(max_processes=processes)
