"""An ``address`` that accepts connections but is no Dask scheduler is refused within seconds, saying what answered.

Dask's own connection waits for a scheduler's handshake with no time limit: given the
dashboard's port, an HTTP server or a socket that says nothing, a run waited for ever,
and an HTTP reply read as a message length asked for 3.07 EiB. Every server here is a
real one on 127.0.0.1.
"""
from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from caf_hpc import dask_adapter, runner_for
from caf_hpc.steering import clusters
from tests.helpers.own_cluster import OwnCluster
from tests.helpers.processes import interrupt_when_ready, left_running, new_mark
from tests.helpers.scripted import ok

#: What a refusal may take on a busy 2-core machine: the handshake wait (5 s), a second to ask in HTTP
#: what answered, and room for the load. Measured: 5.0 s (HTTP servers) and 6.0 s (a silent socket).
REFUSED_WITHIN = 15.0


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory):
    cluster = OwnCluster(tmp_path_factory.mktemp("own-cluster"))
    yield cluster
    cluster.close()


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _Listener:
    """A TCP server that accepts every connection, sends ``greeting`` (if any) and then says nothing."""

    def __init__(self, greeting: bytes = b"") -> None:
        self.greeting = greeting
        self.accepted = threading.Event()
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.address = f"tcp://127.0.0.1:{self.socket.getsockname()[1]}"
        self.connections: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except OSError:
                continue
            self.connections.append(connection)
            if self.greeting:
                connection.sendall(self.greeting)
            self.accepted.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for connection in self.connections:
            connection.close()
        self.socket.close()


@pytest.fixture
def silent_socket():
    listener = _Listener()
    yield listener
    listener.close()


@pytest.fixture
def ssh_like():
    listener = _Listener(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    yield listener.address
    listener.close()


def _dashboard_address(cluster: OwnCluster) -> str:
    port = json.loads(cluster.scheduler_file.read_text())["services"]["dashboard"]
    return f"tcp://127.0.0.1:{port}"


def _refused(calibrate, address: str) -> tuple:
    """(the error, seconds it took) of a run whose runner is given ``address``."""
    started = time.monotonic()
    outcome = calibrate([ok("Never")], runner=runner_for(address=address))
    took = time.monotonic() - started
    assert isinstance(outcome.error, clusters.ClusterError), outcome.error
    assert outcome.final_state == "FAILED"
    return str(outcome.error), took


def test_the_dashboards_port_is_refused_as_no_scheduler(calibrate, own_cluster):
    address = _dashboard_address(own_cluster)
    error, took = _refused(calibrate, address)
    assert error.startswith(f"something listens at {address} but it is not a Dask scheduler (is it the dashboard's "
                            "port?): it answers HTTP (HTTP/1.1 405 Method Not Allowed); check that it runs"), error
    assert took < REFUSED_WITHIN, f"took {took:.1f} s"


def test_an_http_server_is_refused_as_no_scheduler(calibrate, http_server):
    error, took = _refused(calibrate, http_server)
    assert f"something listens at {http_server} but it is not a Dask scheduler (is it the dashboard's port?): " \
           "it answers HTTP (HTTP/1.0 200 OK)" in error, error
    assert "CAF_HPC_ADDRESS" in error and took < REFUSED_WITHIN, (took, error)


def test_a_socket_that_says_nothing_is_refused_after_the_handshake_wait(calibrate, silent_socket):
    error, took = _refused(calibrate, silent_socket.address)
    assert f"something listens at {silent_socket.address} but it is not a Dask scheduler (is it the dashboard's " \
           f"port?): it sent nothing within {clusters.HANDSHAKE_WAIT:g} s" in error, error
    assert clusters.HANDSHAKE_WAIT <= took < REFUSED_WITHIN, f"took {took:.1f} s"


def test_a_server_that_speaks_first_in_another_protocol_is_refused_at_once(calibrate, ssh_like):
    error, took = _refused(calibrate, ssh_like)
    assert "is not a Dask scheduler (is it the dashboard's port?): it sent b'SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n' " \
           "instead of Dask's handshake" in error, error
    assert took < 3, f"took {took:.1f} s"  # no wait: what it sent is not Dask's


def test_a_tls_scheduler_given_as_tcp_is_named_with_the_tls_address(calibrate):
    import asyncio

    from distributed import Scheduler
    from distributed.security import Security

    security = Security.temporary()
    outcome: dict = {}

    async def main():
        async with Scheduler(host="127.0.0.1", port=0, protocol="tls", security=security,
                             dashboard_address="127.0.0.1:0") as scheduler:
            plain = scheduler.address.replace("tls://", "tcp://")
            outcome["address"], outcome["tls"] = plain, scheduler.address
            outcome["error"], outcome["took"] = await asyncio.to_thread(_refused, calibrate, plain)

    asyncio.run(asyncio.wait_for(main(), 60))
    assert f"something listens at {outcome['address']} but it is not a Dask scheduler (is it a scheduler with TLS, " \
           f"reached as {outcome['tls']}?): it closed the connection on plain bytes and speaks TLS" in outcome["error"]
    assert outcome["took"] < REFUSED_WITHIN


def test_a_real_scheduler_passes_the_probe_and_logs_nothing_about_it(own_cluster):
    """The probe answers the scheduler's handshake: its log (INFO by default) gets no line about the probe."""
    log = own_cluster.directory / "dask_scheduler-0.log"
    host, port = own_cluster.address.rsplit("/", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        started = time.monotonic()
        assert dask_adapter.take_dask_handshake(sock, 10) is None
        assert time.monotonic() - started < 2
    client = clusters.client_for(own_cluster.settings())  # probed as well, then connected
    assert client.status == "running" and client.scheduler_info()["address"] == own_cluster.address
    time.sleep(0.5)  # what the scheduler would log about the probe's connection
    assert "closed before handshake completed" not in log.read_text(), log.read_text()


def test_the_demo_refuses_an_http_server_in_one_line_with_no_traceback(http_server, tmp_path):
    command = [sys.executable, "-m", "caf_hpc.cli", "demo", "--address", http_server, "--flavour", "python",
               "--runs", "2", "--output", str(tmp_path / "demo")]
    started = time.monotonic()
    demo = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    took = time.monotonic() - started
    assert demo.returncode != 0, demo.stdout
    # the collector step, the first to reach the cluster, fails; the demo names the cause, from the job's stderr
    refused = f"something listens at {http_server} but it is not a Dask scheduler (is it the dashboard's port?)"
    assert len([line for line in demo.stdout.splitlines() if refused in line]) == 1, demo.stdout
    assert "Traceback" not in demo.stderr and "Exception ignored" not in demo.stderr, demo.stderr
    assert took < REFUSED_WITHIN + 15, f"took {took:.1f} s"  # with the interpreter's start and the simulation


def test_ctrl_c_of_the_demo_waiting_on_a_silent_address_is_one_line(silent_socket, tmp_path):
    variable, mark = new_mark()
    command = [sys.executable, "-m", "caf_hpc.cli", "demo", "--address", silent_socket.address, "--flavour", "python",
               "--runs", "2", "--output", str(tmp_path / "demo")]
    demo = subprocess.Popen(command, env=dict(os.environ, **{variable: mark}), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    output, took = interrupt_when_ready(demo, silent_socket.accepted.is_set)
    assert demo.returncode == 130 and took < 5, (took, output)
    assert output.splitlines()[-1] == "caf-hpc: interrupted (Ctrl-C)", output  # in the collector step: nothing ran
    assert "Traceback" not in output and "Exception ignored" not in output, output
    assert left_running(mark) == []

