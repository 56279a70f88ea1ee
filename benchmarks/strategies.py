"""The strategies every runner of the suite drives: the same classes for caf-hpc and for the baselines.

They speak CAF's strategy protocol and nothing else (``queue.put`` of results and a final
state). What a measure needs to know from inside a strategy (when it started, when it sent
each result) it writes to a file in ``output_dir``, which the runner's side reads afterwards:
nothing extra travels with the results.
"""
from __future__ import annotations

import logging
import os
import time
from collections import namedtuple
from pathlib import Path

from caf_hpc.extras.standins import database
from caf_hpc.extras.standins.framework import Algorithm
from caf_hpc.extras.standins.strategies import AlgorithmStrategy
from caf_hpc.extras.standins.utils import IoV, IoV_Result

#: A result class of the steering side's own, which a worker cannot import: it travels by value.
LocalResult = namedtuple("LocalResult", ["iov", "result"])

STARTED = "strategy-started"   # one line per strategy: its name and time.time() as its run() began
SPANS = "strategy-spans"       # one line per strategy: its name, and when its run() began and ended
SENT = "results-sent"          # per paced strategy: time.time() before each result was put


class Named:
    """An algorithm object with nothing in it but its name (the strategy does the work)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def setInputFileNames(self, files) -> None:
        pass


def algorithms(strategy: type, number: int, prefix: str = "", params: dict | None = None) -> list:
    """``number`` CAF algorithms named ``<prefix or strategy name><i>`` that run ``strategy`` with ``params``."""
    made = []
    for i in range(number):
        algorithm = Algorithm(Named(f"{prefix or strategy.__name__}{i}"))
        algorithm.strategy = strategy
        algorithm.params = dict(params or {})
        made.append(algorithm)
    return made


class _Noted(AlgorithmStrategy):
    """Notes when its ``run`` began and ended; subclasses do the work in ``work``."""

    def run(self, iov, iteration, queue):
        began = time.time()
        name = self.algorithm.name
        with open(Path(self.output_dir, STARTED), "a") as started:
            started.write(f"{name} {began!r}\n")
        self.work(queue)
        with open(Path(self.output_dir, SPANS), "a") as spans:
            spans.write(f"{name} {began!r} {time.time()!r}\n")
        queue.put({"type": "final_state", "value": "COMPLETED"})

    def work(self, queue) -> None:
        raise NotImplementedError


class Trivial(_Noted):
    """One result, at once: what is left of a strategy's wall time is the runner's overhead."""

    def work(self, queue) -> None:
        queue.put({"type": "result", "value": IoV_Result(IoV(1, 1, 1, 1), 0)})


class Realistic(_Noted):
    """A little real work, as a CAF strategy does around its algorithm: 2-3 ms of it.

    Reads its input files, logs through ``logging``, prints, writes to fds 1 and 2 (as C++
    code does), commits a payload to the output database and sends its result. What a
    strategy costs beyond this work is the runner's: the measure compares it with the same
    strategy forked bare.
    """

    def work(self, queue) -> None:
        log = logging.getLogger(f"caf.{self.algorithm.name}")
        total = 0
        for path in self.input_files:
            with open(path, "rb") as handle:
                total += sum(handle.read())
        log.info("read %d input file(s), checksum %d", len(self.input_files), total)
        print(f"{self.algorithm.name}: {len(self.input_files)} input file(s) read")
        os.write(1, b"C++: constants computed\n")
        os.write(2, b"C++: no warnings\n")
        iov = IoV(0, 1, 0, 1)
        database.write_payload(self.output_database_dir, self.algorithm.name,
                               {"checksum": total, "constants": list(range(64))}, iov)
        log.info("committed payload %s", self.algorithm.name)
        queue.put({"type": "result", "value": IoV_Result(iov, 0)})


def input_files(directory: Path, count: int = 4, size: int = 2048) -> list:
    """``count`` small files of ``size`` bytes, for ``Realistic`` to read."""
    directory.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(count):
        path = directory / f"input{i}.bin"
        path.write_bytes(bytes(range(256)) * (size // 256))
        made.append(str(path))
    return made


class Sleeps(_Noted):
    """Works ``params['seconds']`` (a sleep, so that it costs no core), then sends one result."""

    def work(self, queue) -> None:
        time.sleep(self.algorithm.params["seconds"])
        queue.put({"type": "result", "value": IoV_Result(IoV(1, 1, 1, 1), 0)})


class Paced(_Noted):
    """Sends ``params['count']`` results ``params['every']`` s apart, noting the time before each put.

    Each result is alone on its way, so the time until it is in ``runner.results`` is its
    own latency, not a batch's.
    """

    def work(self, queue) -> None:
        sent = []
        for i in range(self.algorithm.params["count"]):
            time.sleep(self.algorithm.params["every"])
            sent.append(time.time())
            queue.put({"type": "result", "value": IoV_Result(IoV(1, i, 1, i), 0)})
        Path(self.output_dir, f"{self.algorithm.name}-{SENT}").write_text("\n".join(map(repr, sent)))


class Many(_Noted):
    """Sends ``params['count']`` results as fast as it can, of CAF's class or of ``LocalResult``."""

    def work(self, queue) -> None:
        make = LocalResult if self.algorithm.params.get("local") else IoV_Result
        for i in range(self.algorithm.params["count"]):
            queue.put({"type": "result", "value": make(IoV(1, i, 1, i), 0)})


class UsesRoot(_Noted):
    """What a C++ algorithm's strategy does first: ROOT, its classes declared to cling, one call into C++."""

    def work(self, queue) -> None:
        from caf_hpc.extras.demo import cpp_algorithms

        algorithm = cpp_algorithms.make("GainCalibration")
        algorithm.setMinHits(10)
        code = algorithm.execute([], 0, None)  # no input: c_NotEnoughData, straight from C++
        queue.put({"type": "result", "value": IoV_Result(IoV(1, 1, 1, 1), code)})


def started_times(output_dir: Path) -> dict:
    """Strategy name -> time.time() its ``run`` began, from ``output_dir``."""
    path = Path(output_dir, STARTED)
    lines = path.read_text().split("\n") if path.exists() else []
    return {name: float(at) for name, at in (line.split() for line in lines if line)}


def spans(output_dir: Path) -> list:
    """(name, began, ended) of every strategy that ran to its end, in the order they ended."""
    path = Path(output_dir, SPANS)
    lines = path.read_text().split("\n") if path.exists() else []
    return [(name, float(began), float(ended)) for name, began, ended in (line.split() for line in lines if line)]


def sent_times(output_dir: Path, name: str) -> list:
    return [float(line) for line in Path(output_dir, f"{name}-{SENT}").read_text().split("\n") if line]
