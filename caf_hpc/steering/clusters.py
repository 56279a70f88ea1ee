"""One Dask cluster and client per target per process, shared by every runner.

CAF builds a new runner for every iteration and runs each calibration in a thread of
its own; all of them must share one cluster instead of starting workers again. The
cluster starts on first use and is closed when the process exits.

The local default starts its scheduler and workers as fresh interpreters, so that an
unguarded steering script is not run again in each (``dask_adapter.subprocess_cluster``).
"""
from __future__ import annotations

import atexit
import logging
import os
import socket
import sys
import threading
import time
from typing import Any

from distributed import Client

from .. import dask_adapter, interrupt
from ..basf2_compat import log_info, log_warning
from ..setting_rules import ALLOWED_FAILURES
from ..sites import pools
from ..sites.build import build_cluster
from . import local_layout
from .settings import RunnerSettings, SettingsError, resolve_site, scheduler_host_port

_lock = threading.Lock()
_clients: dict[tuple, Client] = {}
_clusters: dict[tuple, Any] = {}
#: The local cluster that could start no worker, per target: told at once to every later calibration.
_failed_local: dict[tuple, BaseException] = {}
#: Seconds a local worker waits for a scheduler that is gone before it ends.
LOCAL_DEATH_TIMEOUT = 10


def local_cluster(settings: RunnerSettings) -> Any:
    """A cluster of local worker processes running ``n_workers`` strategies at once (one per core by default),
    as threads of at most one worker process per core (``local_layout`` says why); refused before anything
    starts when the machine cannot hold them (``local_layout.LocalCapacityError``)."""
    layout = local_layout.layout(settings.n_workers)
    log_info(f"local Dask cluster: {layout.describe()}")
    cluster = dask_adapter.subprocess_cluster(
        threads=layout.threads,
        host="127.0.0.1",
        dashboard_address=settings.dashboard_address,
        silence_logs=logging.WARNING,
        # the scheduler ends with this process; the workers end when their scheduler is gone
        scheduler_kwargs={"preload": ["caf_hpc.steering.parent_guard"],
                          "preload_argv": [["--parent", str(os.getpid())]], "allowed_failures": ALLOWED_FAILURES},
        worker_kwargs={"death_timeout": LOCAL_DEATH_TIMEOUT},
    )
    cluster.caf_hpc_layout = layout
    dask_adapter.drain_scheduler_stderr(cluster, _pass_on_scheduler_line)
    cluster.caf_hpc_worker_tails = dask_adapter.drain_worker_stderr(cluster, _pass_on_worker_line)
    return cluster


def _pass_on_worker_line(name: str, text: str) -> None:
    """A local worker's warnings and errors, one line each, in this process's log; its tracebacks only in the
    message that says why it ended (``wait_for_local_worker``)."""
    if " - WARNING - " in text or " - ERROR - " in text or " - CRITICAL - " in text:
        log_warning(f"Dask worker {name}: {text}")


#: How often the steering process looks whether the first local worker came, while it waits for it.
_LOCAL_START_POLL = 0.05


def wait_for_local_worker(client: Client, cluster: Any, settings: RunnerSettings) -> None:
    """Returns once a worker of the local ``cluster`` is connected; ``ClusterError`` when none comes.

    No strategy can start before, so the wait costs nothing. It fails at once when every
    worker process ended (a nanny that could not start its worker within its start
    timeout ends), and after ``worker_wait`` when none connected; the message says what
    was asked, what the machine has and what to do, instead of every strategy waiting
    for a worker that will never come.
    """
    layout = getattr(cluster, "caf_hpc_layout", None)
    deadline = time.monotonic() + settings.worker_wait
    while True:
        if client.scheduler_info(n_workers=-1).get("workers"):
            return
        ended = dask_adapter.ended_subprocess_workers(cluster)
        if (layout is not None and len(ended) >= layout.processes) or time.monotonic() >= deadline:
            break
        time.sleep(_LOCAL_START_POLL)
    raise ClusterError(_no_local_worker(cluster, layout, settings, ended))


def _no_local_worker(cluster: Any, layout: Any, settings: RunnerSettings, ended: list) -> str:
    import psutil

    asked = layout.describe() if layout is not None else "the local Dask cluster"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    machine = (f"this machine has {layout.machine.cores} core(s), a load average of {load:.1f} over the last "
               f"minute and {psutil.virtual_memory().available / 1e9:.1f} GB of memory available"
               if layout is not None else f"this machine has a load average of {load:.1f}")
    if ended and layout is not None and len(ended) >= layout.processes:
        what = (f"all {len(ended)} of its worker processes ended while starting (exit code(s) "
                f"{', '.join(sorted({str(code) for code in ended}))})")
    else:
        what = f"no worker connected within {settings.worker_wait:g} s (worker_wait)"
    tails = getattr(cluster, "caf_hpc_worker_tails", {})
    said = next((line for tail in tails.values() for line in reversed(tail)
                 if " - ERROR - " in line or "Error" in line), "")
    said = f"; the first worker's last error: {said.strip().rstrip('.')}" if said else ""
    return (f"the local Dask cluster started no worker for {asked}: {what}; {machine}{said}. "
            f"A machine this busy or short of memory cannot start them in time: run when it is quieter, give a "
            f"longer worker_wait, or fewer strategies at once (runner_for(n_workers=...) or CAF_HPC_WORKERS; fewer "
            f"than the cores also starts fewer worker processes), or run on a batch site (docs/site-configs.md)")


def _pass_on_scheduler_line(text: str) -> None:
    """The scheduler's warnings and errors, in this process's log (its stderr is a pipe nobody else reads)."""
    if " - WARNING - " in text or " - ERROR - " in text or " - CRITICAL - " in text:
        log_warning(f"Dask scheduler: {text}")


class ClusterError(RuntimeError):
    """The cluster named in the settings cannot be reached or started."""


def connect_timeout() -> float:
    """How long reaching a scheduler may take: Dask's own ``distributed.comm.timeouts.connect``
    (30 s unless set, e.g. ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=10s``)."""
    import dask.config
    from dask.utils import parse_timedelta

    return float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), default="seconds"))


#: Messages a client keeps of what it sent, for debugging (``distributed.admin.low-level-log-length``,
#: 1,000 by default). Each strategy's submission carries its pickled algorithm, which can be megabytes
#: (a C++ object travelling by value): the default would keep the last thousand of them.
SENT_MESSAGE_LOG = 10


def _client(key: tuple, target: Any, **kwargs: Any) -> Client:
    """A client of ``target``, kept as the one for ``key`` (so that it is closed at exit).

    Ctrl-C waits until it is kept: a client whose start it cut, known to no one, would
    be closed by the garbage collector at the interpreter's exit, after Dask's 60 s wait
    for its stopped loop, with a traceback.
    """
    import dask.config

    with interrupt.deferred(), dask.config.set({"distributed.admin.low-level-log-length": SENT_MESSAGE_LOG}):
        client = _clients[key] = Client(target, set_as_default=False, **kwargs)
        return client


#: How long what answers at an ``address`` has to send Dask's handshake (the connect timeout if that is shorter).
#: A scheduler sends it within milliseconds of the connection; Dask itself warns when an event loop
#: stalls for 3 s (``distributed.admin.tick.limit``).
HANDSHAKE_WAIT = 5.0
#: After that silence, how long an HTTP server has to answer a HEAD request, so that the error can say what it is.
_IDENTIFY_WAIT = 1.0


def _connect(key: tuple, address: str) -> Client:
    """A client of the scheduler at ``address``, kept for ``key``.

    A refused connection fails at once (Dask itself would retry it for the whole connect
    timeout); a silent address fails after the connect timeout; something that accepts the
    connection but is not a Dask scheduler (the dashboard's port, any HTTP server, a bare
    socket) fails within ``HANDSHAKE_WAIT``, saying what answered. Dask's own connection
    would wait for its handshake forever there, or read an HTTP reply as a message length.
    """
    timeout = connect_timeout()
    where = "check that it runs and the address (runner_for(address=...) or CAF_HPC_ADDRESS)"
    host, port = scheduler_host_port(address)  # checked already when the settings were made
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: the connection was refused, so "
                           f"nothing listens there; {where}") from None
    except OSError as err:  # timed out, no route, unknown host
        reason = f"no answer within {timeout:g} s (distributed.comm.timeouts.connect)" \
            if isinstance(err, TimeoutError) else str(err)
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {reason}; {where}") from None
    with sock:
        not_dask = _not_a_scheduler(sock, address, min(timeout, HANDSHAKE_WAIT))
    if not_dask:
        raise ClusterError(f"something listens at {address} but it is not a Dask scheduler ({not_dask[1]}): "
                           f"{not_dask[0]}; {where}")
    try:
        return _client(key, address, timeout=timeout)
    except (OSError, TimeoutError) as err:
        raise ClusterError(f"cannot reach the Dask scheduler at {address} ({err}); {where}") from None


_DASHBOARD = "is it the dashboard's port?"


def _not_a_scheduler(sock: socket.socket, address: str, wait: float) -> tuple | None:
    """``(what answered, a hint)`` when what answered at ``address`` does not speak Dask's protocol; else None."""
    import ssl

    if address.startswith("tls://"):
        from distributed.security import Security

        context = Security().get_connection_args("client").get("ssl_context")
        if context is None:
            return None  # no TLS configured: Dask's own connection says so
        sock.settimeout(wait)
        try:
            tls = context.wrap_socket(sock)
        except ssl.SSLError as err:
            hint = ("is it a scheduler without TLS, reached as tcp://...? One with TLS needs the certificates "
                    "of the Dask config's distributed.comm.tls")
            return f"the TLS handshake failed ({err.reason or err})", hint
        except OSError:
            return f"it sent nothing within {wait:g} s", _DASHBOARD
        with tls:
            return _ask(tls, address, wait)
    return _ask(sock, address, wait)


def _ask(sock: socket.socket, address: str, wait: float) -> tuple | None:
    seen = dask_adapter.take_dask_handshake(sock, wait)
    if seen is None:
        return None
    closed = False
    if not seen:  # silent: ask it in HTTP what it is
        try:
            sock.settimeout(_IDENTIFY_WAIT)
            sock.sendall(b"HEAD / HTTP/1.0\r\n\r\n")
            seen = sock.recv(64)
            closed = not seen
        except TimeoutError:  # silent still
            pass
        except OSError:  # it reset the connection
            closed = True
    if seen.startswith(b"HTTP/"):
        status = seen.splitlines()[0].decode(errors="replace")
        return f"it answers HTTP ({status})", _DASHBOARD
    tls_hint = f"is it a scheduler with TLS, reached as {address.replace('tcp://', 'tls://', 1)}?"
    if seen:
        return f"it sent {seen[:32]!r} instead of Dask's handshake", _DASHBOARD
    if closed and address.startswith("tcp://") and _speaks_tls(scheduler_host_port(address)):
        return "it closed the connection on plain bytes and speaks TLS", tls_hint
    if closed:
        return "it closed the connection without Dask's handshake", _DASHBOARD
    return f"it sent nothing within {wait:g} s", _DASHBOARD


def _speaks_tls(host_port: tuple) -> bool:
    """Whether a TLS handshake with ``host_port`` gets as far as the server's answer (certificates unchecked)."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection(host_port, timeout=_IDENTIFY_WAIT) as raw, context.wrap_socket(raw):
            return True
    except ssl.SSLError as err:  # a TLS server's alert (it wants a client certificate), or no TLS at all
        return "ALERT" in str(err.reason).upper()
    except OSError:
        return False


def _make_cluster(settings: RunnerSettings, key: tuple | None = None) -> Any:
    """The cluster for ``settings``, kept as the one for ``key`` (so that it is closed at exit) before it
    has processes or batch jobs that could outlive this process."""
    def keep(cluster: Any) -> None:
        if key is not None:
            _clusters[key] = cluster

    if settings.site and settings.site_config is None:
        settings = resolve_site(settings)
    site = settings.site_config
    if site is not None and site.is_batch:
        dashboard = settings.dashboard_address if "dashboard_address" in settings.explicit else None
        return build_cluster(site, dashboard, keep=keep)
    # the local default, or a local site whose values are in the settings. Ctrl-C waits until it started
    # (a second or two): a start it cut left processes that no one closes
    with interrupt.deferred():
        cluster = local_cluster(settings)
        keep(cluster)
    return cluster


def client_for(settings: RunnerSettings) -> Client:
    """The shared client for ``settings``' target, creating cluster and client on first use."""
    key = settings.cluster_key
    with _lock:
        client = _clients.get(key)
        if client is not None and client.status == "running":
            return client
        dask_adapter.quiet_benign_errors()
        failed = _failed_local.get(key)
        if failed is not None:
            raise ClusterError(str(failed))
        if settings.address:
            client = _connect(key, settings.address)
            _limits.pop(key, None)
        else:
            cluster = _clusters.get(key)
            if cluster is None:
                log_info(f"starting {settings.description}")
                cluster = _make_cluster(settings, key)
                dashboard = getattr(cluster, "dashboard_link", None)
                if dashboard:
                    log_info(f"Dask dashboard at {dashboard}")
            client = _client(key, cluster)
            if hasattr(cluster, "caf_hpc_layout"):
                try:
                    wait_for_local_worker(client, cluster, settings)
                except ClusterError as err:
                    _failed_local[key] = err  # the next calibration's thread is told at once
                    _close([_clients.pop(key)], [_clusters.pop(key)])
                    raise
            if hasattr(cluster, "job_cls"):  # a dask-jobqueue cluster
                from .job_replacement import keep_jobs

                keep_jobs(client, cluster)
    if settings.address:
        _check_retries(client, settings)
    return client


_limits: dict[tuple, int] = {}


def _check_retries(client: Client, settings: RunnerSettings) -> None:
    """Refuses a ``retries`` above the limit of a scheduler caf-hpc did not start: that scheduler would end the
    strategy with a ``KilledWorker`` before the runner's own limit (``ALLOWED_FAILURES`` says why)."""
    key = settings.cluster_key
    limit = _limits.get(key)
    if limit is None:
        try:
            limit = _limits[key] = dask_adapter.allowed_failures(client)
        except Exception as err:
            raise ClusterError(f"cannot read how many lost workers the Dask scheduler at {settings.address} allows "
                               f"a task ({type(err).__name__}: {err}); caf-hpc reads it on the scheduler, which must "
                               "run the functions it is sent (distributed.scheduler.pickle, true by default)") from None
    if settings.retries > limit:
        raise SettingsError(
            f"retries={settings.retries} is more than the Dask scheduler at {settings.address} allows: it ends a "
            f"task with KilledWorker once it has lost {limit + 1} workers (distributed.scheduler.allowed-failures="
            f"{limit}), before the runner's own limit. Give retries={limit} or less (runner_for(retries=...) or "
            f"CAF_HPC_RETRIES), or start that scheduler with DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="
            f"{settings.retries} in its environment")


def worker_source(settings: RunnerSettings) -> str:
    """Where the workers come from, for messages: the site, its queue and job logs; the scheduler's address;
    or the local cluster. A site's is the one the run read (``settings.site_config``): a message reads no file."""
    if settings.site:
        site = settings.site_config if settings.site_config is not None else resolve_site(settings).site_config
        assert site is not None
        return site.summary()
    if settings.address:
        return f"the Dask scheduler at {settings.address}"
    return "the local Dask cluster"


def dashboard(client: Client) -> str | None:
    """The address of the cluster's Dask dashboard, or None where the scheduler serves none."""
    try:
        return client.dashboard_link
    except Exception:  # a scheduler started without a dashboard
        return None


def state(client: Client, settings: RunnerSettings) -> str:
    """What the cluster has now, for a strategy that waits: workers connected and busy, batch jobs submitted."""
    try:
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
    except Exception as err:  # only for a progress line
        return f"{worker_source(settings)} (not answering: {err!r})"
    busy = sum(1 for w in workers.values() if w.get("metrics", {}).get("task_counts", {}).get("executing"))
    text = f"{len(workers)} worker(s) connected, {busy} busy"
    cluster = getattr(client, "cluster", None)
    if cluster is not None and hasattr(cluster, "job_cls") and settings.site_config is not None:
        ids = [str(job.job_id) for job in list(cluster.workers.values()) if getattr(job, "job_id", None)]
        text += f"; {settings.site_config.scheduler_type.jobs_summary(ids)}"
    return f"{text}; {worker_source(settings)}"


def close(settings: RunnerSettings) -> None:
    """Closes the client and cluster behind ``settings`` (its batch jobs are cancelled)."""
    with _lock:
        clients = [c for c in [_clients.pop(settings.cluster_key, None)] if c is not None]
        clusters = [c for c in [_clusters.pop(settings.cluster_key, None)] if c is not None]
    _close(clients, clusters)


def close_all() -> None:
    """Closes every client and cluster this process started (registered to run at exit)."""
    with _lock:
        clients, clusters = list(_clients.values()), list(_clusters.values())
        _clients.clear()
        _clusters.clear()
    _close(clients, clusters)
    scheduler_jobs = sys.modules.get("caf_hpc.sites.scheduler_job")  # imported only where a site uses one
    if scheduler_jobs is not None:
        scheduler_jobs.cancel_leftovers()  # a scheduler's job whose cluster never finished its start


#: How long a batch cluster's workers get to go after their jobs were cancelled, before the cluster closes.
CANCEL_WAIT = 15.0
#: How long the processes of a local cluster's workers may take to end once killed.
WORKERS_END_WAIT = 5.0


def _cancel_jobs_first(client: Client, cluster: Any) -> None:
    """Cancels a batch cluster's jobs and waits for their workers to go, before the cluster closes.

    dask-jobqueue's close first tells every worker to close, which makes each worker
    connect to its nanny, and cancels the jobs at the same moment: the batch system's
    SIGTERM cut those connections, and every successful run left "TLS handshake failed"
    and "invalid operation on non-started TCPListener" tracebacks in the job logs.
    Cancelled first, each job's nanny and worker end on the SIGTERM alone, with no
    connection between them open; the cluster then closes with no worker left.
    """
    dask_adapter.stop_adaptive(cluster)  # it would submit new jobs for the ones cancelled here
    pools.stop(cluster)
    cluster.scale(0)
    deadline = time.monotonic() + CANCEL_WAIT
    while client.scheduler_info(n_workers=-1).get("workers") and time.monotonic() < deadline:
        time.sleep(0.1)


def _close(clients: list, clusters: list) -> None:
    batch = {id(cluster) for cluster in clusters if hasattr(cluster, "job_cls")}
    for client in clients:
        try:
            dask_adapter.stop_worker_events(client)  # also the job replacement
            if client.status == "running" and id(getattr(client, "cluster", None)) in batch:
                _cancel_jobs_first(client, client.cluster)
        except Exception:  # closing must not raise; cancelling the jobs below ends them anyway
            pass
        try:
            client.close(timeout=10)
        except Exception:  # closing at exit must not raise
            pass
    for cluster in clusters:
        try:
            dask_adapter.stop_draining(cluster)
            # a local cluster's workers go first, killed with everything they started: quickly and in
            # order, also when a strategy is being stopped at this moment (Ctrl-C)
            dask_adapter.end_subprocess_workers(cluster, timeout=WORKERS_END_WAIT)
            pools.stop(cluster)  # cancelled already with the default pool's jobs, unless its client was gone
            cluster.close(timeout=20)
        except Exception:
            pass


atexit.register(close_all)
