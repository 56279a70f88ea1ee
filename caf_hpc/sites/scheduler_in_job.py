"""The Dask scheduler inside a batch job of its own (``dask_scheduler: {placement: job}``): the job's side.

The scheduler's job is a dask-jobqueue job of the site (its batch directives, prologue,
Python and container), whose worker command is this module instead of
``distributed.cli.dask_worker``. dask-jobqueue writes that command as
``PYTHON -m MODULE SCHEDULER --name N --nthreads T --memory-limit M [worker options]``;
here ``SCHEDULER`` is the scheduler file on the shared file system, and the options it
adds for a worker (``--interface``, ``--protocol``, ``--tls-*``) are what the scheduler
needs too. This module turns that into Dask's own scheduler command,
``python -m distributed.cli.dask_scheduler --scheduler-file FILE ...``, and runs it in
its place (``exec``), so that the batch job is the scheduler's process: the job ends
when the scheduler ends, and cancelling the job ends the scheduler.

Two translations are needed. Dask's scheduler command refuses ``--interface`` together
with TLS (TLS makes it use ``--host tls://``, and it refuses both), so the interface
becomes its address here, on the node. And the scheduler's settings that have no
command-line option (``allowed_failures``, ``worker_ttl``, ...) go to its environment as
Dask config (``--config distributed.scheduler.allowed-failures=1``).

Imported as the scheduler's preload (``--preload caf_hpc.sites.scheduler_in_job``), it
also ends the scheduler when no steering process has been connected for
``--client-timeout`` seconds: a steering process killed outright (SIGKILL, a node lost)
cannot cancel the job, and the scheduler would otherwise hold its job until the walltime.
The same preload adds, to the scheduler file that Dask wrote, where the TLS files are.

Nothing here imports dask-jobqueue: the job's Python needs only Dask and caf-hpc.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, NoReturn

import click

#: The client Dask's scheduler always lists, which is no steering process.
_NOT_A_CLIENT = "fire-and-forget"
#: How the clients of tasks on a worker (``get_client()``: a strategy's result queue) are named.
_WORKER_CLIENT = "Client-worker-"
#: How often the preload looks for connected steering processes.
CHECK_INTERVAL = 1.0
#: The key under which the scheduler file says where the TLS files are (Dask's own readers ignore it).
TLS_KEY = "tls"
#: This module, as the scheduler imports it (run with ``-m``, its ``__name__`` is ``__main__``).
PRELOAD = "caf_hpc.sites.scheduler_in_job"


def _arguments(argv: list) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m caf_hpc.sites.scheduler_in_job", allow_abbrev=False)
    parser.add_argument("scheduler_file")
    # what dask-jobqueue writes for a worker, not used by a scheduler
    for unused in ("--name", "--nthreads", "--memory-limit", "--death-timeout", "--local-directory", "--nworkers"):
        parser.add_argument(unused)
    parser.add_argument("--interface")
    parser.add_argument("--protocol")
    parser.add_argument("--tls-ca-file")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    # caf-hpc's own, for the scheduler
    parser.add_argument("--host")
    parser.add_argument("--port", default="0")
    parser.add_argument("--dashboard-address")
    parser.add_argument("--client-timeout", type=float)
    parser.add_argument("--config", action="append", default=[], help="KEY=VALUE, a Dask config value")
    return parser.parse_args(argv)


def _host(options: argparse.Namespace) -> str | None:
    """``--host`` for Dask's command: given, or the address of ``--interface`` on this node, with the protocol."""
    protocol = (options.protocol or ("tls" if options.tls_cert else "tcp")).split("://")[0]
    host = options.host
    if not host and options.interface:
        from distributed.utils import get_ip_interface

        host = get_ip_interface(options.interface)
    if not host:
        return f"{protocol}://" if protocol != "tcp" else None
    return host if "://" in host else f"{protocol}://{host}"


def config_variable(key: str) -> str:
    """The environment variable Dask reads ``key`` from: ``distributed.scheduler.worker-ttl`` ->
    ``DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL``."""
    return "DASK_" + "__".join(part.replace("-", "_").upper() for part in key.split("."))


def scheduler_command(options: argparse.Namespace) -> list:
    """Dask's scheduler command line for ``options`` (a parsed worker command line, see the module's doc)."""
    command = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--scheduler-file", options.scheduler_file,
               "--port", str(options.port)]
    host = _host(options)
    if host:
        command += ["--host", host]
    for flag in ("tls_ca_file", "tls_cert", "tls_key", "dashboard_address"):
        value = getattr(options, flag)
        if value:
            command += [f"--{flag.replace('_', '-')}", value]
    command += ["--preload", PRELOAD]
    if options.client_timeout:
        command += ["--client-timeout", str(options.client_timeout)]
    return command


def main(argv: list | None = None) -> NoReturn:
    """Runs Dask's scheduler in this process, as the module's doc says."""
    options = _arguments(sys.argv[1:] if argv is None else argv)
    environment = dict(os.environ)
    for item in options.config:
        key, _, value = item.partition("=")
        environment[config_variable(key)] = value
    if options.tls_cert:
        environment[config_variable("distributed.comm.require-encryption")] = "True"
    command = scheduler_command(options)
    sys.stdout.flush()
    os.execve(command[0], command, environment)


# -- the scheduler's preload ----------------------------------------------------------------------

def _steering_clients(scheduler: Any) -> int:
    """Clients other than Dask's own and those of tasks on workers: those of steering processes."""
    return sum(1 for name in scheduler.clients if name != _NOT_A_CLIENT and not name.startswith(_WORKER_CLIENT))


def _add_tls_locations(scheduler: Any) -> None:
    """Writes the TLS files' paths into the scheduler file, beside Dask's ``address`` (atomically)."""
    path = scheduler.scheduler_file
    if not path:
        return
    tls = scheduler.security.get_tls_config_for_role("scheduler")
    locations = {"ca_file": tls.get("ca_file"), "cert": tls.get("cert"), "key": tls.get("key")}
    if not any(locations.values()):
        return
    with open(path, encoding="utf-8") as stream:
        identity = json.load(stream)
    identity[TLS_KEY] = locations
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(identity, stream, indent=2)
    os.replace(temporary, path)


async def _watch_clients(scheduler: Any, timeout: float) -> None:
    import asyncio
    import logging

    last_seen = time.monotonic()
    while scheduler.status.name not in ("closing", "closed"):
        await asyncio.sleep(CHECK_INTERVAL)
        if _steering_clients(scheduler):
            last_seen = time.monotonic()
        elif time.monotonic() - last_seen > timeout:
            logging.getLogger("distributed.scheduler").warning(
                "caf-hpc: no steering process connected for %g s (--client-timeout): closing the scheduler, "
                "which ends its batch job", timeout)
            await scheduler.close(reason="caf-hpc: no steering process connected")
            return


#: The watches running (a task nobody refers to may be garbage-collected while it runs).
_watches: set = set()


@click.command()
@click.option("--client-timeout", type=float, default=None,
              help="seconds without a steering process connected before the scheduler ends")
def dask_setup(scheduler: Any, client_timeout: float | None) -> None:
    import asyncio

    _add_tls_locations(scheduler)
    if client_timeout:
        watch = asyncio.ensure_future(_watch_clients(scheduler, client_timeout))
        _watches.add(watch)
        watch.add_done_callback(_watches.discard)


if __name__ == "__main__":
    main()
