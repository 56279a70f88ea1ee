"""How the local default runs ``n_workers`` strategies at once: worker processes, threads, and what fits.

``n_workers`` (``CAF_HPC_WORKERS``, ``--workers``, a local site's ``cluster.n_workers``)
is how many strategies the local cluster runs at once: one per core unless set. Each
strategy runs in a process of its own, forked by its worker's fork server, and a worker
thread only supervises it (waits on its pipe, forwards its records), so one worker
process serves several strategies at once as well as several processes would. The
strategies are therefore spread over at most one worker process per core, as threads
(``n_workers=16`` on 2 cores: 2 processes of 8 threads). Why not a process per strategy:
each is a nanny, a worker and a fork server, three interpreters and about 120 MB; 32 of
them starting at once on 2 cores took longer than their nannies' start timeout, with
3,410 lines of tracebacks, or no worker at all within 300 s. And each pays the
``preload`` (about 3 s for ROOT) again.

What the machine cannot hold is refused before anything starts, with what was asked,
what the machine has and what to give instead (``LocalCapacityError``): strategy
processes need memory and open files of their worker, and there is a limit to both.
The floors used are the smallest a strategy can cost; a real algorithm needs more
memory, so a refusal is certain and an acceptance is no promise.
"""
from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from typing import NoReturn

from ..setting_rules import SettingsError

MB = 1_000_000
#: Memory of one local worker process, with its nanny and its fork server (unique set size measured with
#: psutil on the benchmark machine: nanny 44 MB, worker 49 MB, fork server and multiprocessing's
#: resource tracker about 10 MB each).
WORKER_PROCESS_BYTES = 120 * MB
#: The least a strategy's process costs: one forked from the fork server, before the algorithm
#: allocates anything (a spare child measures 2 MB of its own; unpickling the strategy and sending
#: its results some more).
STRATEGY_BYTES = 20 * MB
#: Descriptors a worker process holds per strategy it runs: the message pipe and the strategy's stdin
#: throughout, its log file and the other end of the stdin pipe while it starts.
FILES_PER_STRATEGY = 4
#: Descriptors a worker process needs for itself: its connections, the fork server's socket, libraries.
FILES_RESERVED = 256
#: Processes of the user besides the strategies: per worker process a nanny, a worker, a fork server with
#: its spare child, and multiprocessing's resource tracker.
PROCESSES_PER_WORKER = 5

_WHERE = "runner_for(n_workers=...), CAF_HPC_WORKERS, caf-hpc demo --workers, or the local site's cluster.n_workers"


class LocalCapacityError(SettingsError):
    """``n_workers`` asks for more strategies at once than this machine can hold; the message says what fits."""


@dataclass(frozen=True)
class Machine:
    """What this machine gives the local cluster (``here()``), or another one's figures, for tests."""

    cores: int
    available_memory: int              # bytes
    open_files: int                    # per process (RLIMIT_NOFILE, soft)
    user_processes: int | None      # more processes this user may start (RLIMIT_NPROC); None: no limit

    @classmethod
    def here(cls) -> Machine:
        import psutil
        from dask.system import CPU_COUNT  # the cores this process may use: affinity and cgroup quota

        files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return cls(cores=int(CPU_COUNT), available_memory=int(psutil.virtual_memory().available),
                   open_files=files if files != resource.RLIM_INFINITY else 1 << 20,
                   user_processes=_processes_left())

    def summary(self) -> str:
        text = (f"{self.cores} core(s), {self.available_memory / 1e9:.1f} GB of memory available and "
                f"{self.open_files:,} open files per process")
        if self.user_processes is not None:
            text += f" and {self.user_processes:,} more processes for this user"
        return text


def _processes_left() -> int | None:
    """How many more processes this user may start (RLIMIT_NPROC), or None where there is no such limit."""
    limit = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if limit == resource.RLIM_INFINITY or os.geteuid() == 0:  # the kernel does not hold root to it
        return None
    import psutil

    uid, running = os.getuid(), 0
    for process in psutil.process_iter(["uids"]):
        uids = process.info.get("uids")
        if uids is not None and uids.real == uid:
            running += 1
    return max(0, limit - running)


@dataclass(frozen=True)
class LocalLayout:
    """The local cluster for ``n_workers``: ``threads[i]`` strategies at once in worker process ``i``."""

    threads: tuple
    machine: Machine
    asked: int | None     # n_workers as given; None: one strategy per core

    @property
    def slots(self) -> int:
        return sum(self.threads)

    @property
    def processes(self) -> int:
        return len(self.threads)

    def describe(self) -> str:
        """E.g. ``16 strategies at once (n_workers=16) in 2 worker processes of 8 threads, on 2 cores``."""
        asked = f"n_workers={self.asked}" if self.asked is not None else "one per core"
        counts = sorted(set(self.threads), reverse=True)
        threads = " or ".join(str(n) for n in counts)
        plural = "" if counts == [1] else "s"
        return (f"{self.slots} strateg{'y' if self.slots == 1 else 'ies'} at once ({asked}) in {self.processes} "
                f"worker process{'es' if self.processes > 1 else ''} of {threads} thread{plural}, on "
                f"{self.machine.cores} core{'s' if self.machine.cores > 1 else ''}")


def spread(slots: int, processes: int) -> tuple:
    """``slots`` threads over ``processes`` processes, as evenly as they go (5 over 2: 3 and 2)."""
    share, extra = divmod(slots, processes)
    return tuple(share + (1 if i < extra else 0) for i in range(processes))


def most_strategies(machine: Machine, processes: int) -> tuple:
    """How many strategies at once ``machine`` holds in ``processes`` worker processes, and what limits it."""
    limits = {
        "memory": (machine.available_memory - processes * WORKER_PROCESS_BYTES) // STRATEGY_BYTES,
        "open files": processes * ((machine.open_files - FILES_RESERVED) // FILES_PER_STRATEGY),
    }
    if machine.user_processes is not None:
        limits["processes"] = machine.user_processes - processes * PROCESSES_PER_WORKER
    what = min(limits, key=lambda key: limits[key])
    return max(0, int(limits[what])), what


def layout(n_workers: int | None, machine: Machine | None = None) -> LocalLayout:
    """The local cluster's processes and threads for ``n_workers`` strategies at once (None: one per core),
    or ``LocalCapacityError`` when this machine cannot hold them."""
    machine = machine or Machine.here()
    slots = n_workers or machine.cores
    processes = max(1, min(slots, machine.cores))
    most, limit = most_strategies(machine, processes)
    if slots > most:
        _refuse(n_workers, slots, machine, most, limit)
    return LocalLayout(spread(slots, processes), machine, n_workers)


def _refuse(n_workers: int | None, slots: int, machine: Machine, most: int, limit: str) -> NoReturn:
    why = {"memory": f"a strategy's process takes at least {STRATEGY_BYTES // MB} MB, each worker process about "
                     f"{WORKER_PROCESS_BYTES // MB} MB",
           "open files": f"its worker process holds {FILES_PER_STRATEGY} open files per strategy",
           "processes": "each strategy is a process of its own"}[limit]
    asked = f"n_workers={n_workers}" if n_workers is not None else f"one strategy per core ({slots})"
    if most < 1:
        fix = (f"free some {limit} on this machine, or run on a batch site (runner_for('site-name'), "
               f"docs/site-configs.md)")
    else:
        fix = (f"give n_workers={most} or fewer ({_WHERE}); for more at once, run on a batch site "
               f"(runner_for('site-name'), docs/site-configs.md)")
    raise LocalCapacityError(
        f"the local Dask cluster cannot run {slots} strategies at once ({asked}): this machine has "
        f"{machine.summary()}, and {why}, so at most {most} fit by {limit}. Nothing was started; {fix}")

