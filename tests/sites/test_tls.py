"""TLS for batch sites: credentials in private files, and a cluster that refuses clients without them."""
from __future__ import annotations

import asyncio
import os
import socket
import ssl
import stat

import pytest
from distributed import Client, Scheduler, Worker
from distributed.comm.core import CommClosedError, FatalCommClosedError
from distributed.security import Security

from caf_hpc.sites import SiteConfigError, load_site
from caf_hpc.sites.security import ensure_credentials, security_for

pytestmark = pytest.mark.timeout(30)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def tls_dir(tmp_path):
    return tmp_path / "shared" / "tls" / "site"


def test_credentials_are_private_files_in_a_private_directory(tls_dir):
    old = os.umask(0)  # modes must not depend on the caller's umask
    try:
        files = ensure_credentials(tls_dir)
    finally:
        os.umask(old)
    assert mode(tls_dir) == 0o700
    assert {p.name: mode(p) for p in tls_dir.iterdir() if not p.name.startswith(".")} == {
        "ca.pem": 0o600, "cert.pem": 0o600, "key.pem": 0o600}
    assert mode(tls_dir / ".lock") == 0o600
    assert b"PRIVATE KEY" in files.key.read_bytes() and b"CERTIFICATE" in files.ca.read_bytes()


def test_credentials_are_reused_while_valid(tls_dir):
    first = ensure_credentials(tls_dir)
    before = [p.read_bytes() for p in (first.ca, first.cert, first.key)]
    second = ensure_credentials(tls_dir)
    assert [p.read_bytes() for p in (second.ca, second.cert, second.key)] == before


def test_broken_credentials_are_replaced(tls_dir):
    files = ensure_credentials(tls_dir)
    files.cert.write_bytes(b"not a certificate")
    ensure_credentials(tls_dir)
    assert b"BEGIN CERTIFICATE" in files.cert.read_bytes()


def test_loose_modes_are_tightened(tls_dir):
    files = ensure_credentials(tls_dir)
    tls_dir.chmod(0o755)
    files.key.chmod(0o644)
    ensure_credentials(tls_dir)
    assert (mode(tls_dir), mode(files.key)) == (0o700, 0o600)


def test_a_directory_of_someone_else_is_refused(tls_dir, monkeypatch):
    tls_dir.mkdir(parents=True)
    monkeypatch.setattr(os, "getuid", lambda: os.stat(tls_dir).st_uid + 1)
    with pytest.raises(SiteConfigError, match="belongs to uid"):
        ensure_credentials(tls_dir)


def test_site_security_requires_encryption_and_uses_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    site = load_site("localhost-slurm")
    security = security_for(site.security["directory"])
    directory = tmp_path / ".caf-hpc" / "tls" / "localhost-slurm"
    assert security.require_encryption is True
    worker = security.get_tls_config_for_role("worker")
    assert (worker["ca_file"], worker["cert"], worker["key"]) == (
        str(directory / "ca.pem"), str(directory / "cert.pem"), str(directory / "key.pem"))
    assert mode(directory) == 0o700


def _raw_tls_client_without_certificate(address: str, ca_file: str) -> bytes:
    """Connects with TLS trusting our CA but presenting no certificate; returns what the server sends."""
    host, port = address.rsplit("/", 1)[-1].rsplit(":", 1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(ca_file)
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with context.wrap_socket(raw) as tls:
            return tls.recv(1)


def test_scheduler_accepts_a_client_with_the_certificate_and_refuses_others(tmp_path, monkeypatch):
    """A real scheduler and worker with the site's Security: its certificate gets in, nothing else does."""
    monkeypatch.setenv("HOME", str(tmp_path))
    security = security_for(load_site("localhost-slurm").security["directory"])
    ca_file = security.get_tls_config_for_role("client")["ca_file"]

    async def main():
        async with Scheduler(host="127.0.0.1", port=0, protocol="tls", security=security,
                             dashboard_address="127.0.0.1:0") as scheduler:
            assert scheduler.address.startswith("tls://")
            async with Worker(scheduler.address, security=security):
                async with Client(scheduler.address, security=security, asynchronous=True) as client:
                    assert await client.submit(sum, [1, 2, 3]) == 6

                plain = scheduler.address.replace("tls://", "tcp://")
                with pytest.raises(CommClosedError) as no_tls:
                    async with Client(plain, asynchronous=True, timeout=3):
                        pass
                with pytest.raises(FatalCommClosedError) as other_ca:
                    async with Client(scheduler.address, security=Security.temporary(), asynchronous=True,
                                      timeout=3):
                        pass
                loop = asyncio.get_running_loop()
                with pytest.raises(ssl.SSLError) as no_cert:
                    await loop.run_in_executor(None, _raw_tls_client_without_certificate,
                                               scheduler.address, ca_file)
        return no_tls.value, other_ca.value, no_cert.value

    no_tls, other_ca, no_cert = asyncio.run(main())
    assert "reset by peer" in str(no_tls) or "closed" in str(no_tls).lower()
    assert "certificate does not match" in str(other_ca)
    assert "CERTIFICATE_REQUIRED" in str(no_cert)


def test_credentials_close_to_expiry_are_renewed(tls_dir, monkeypatch):
    from caf_hpc.sites import security

    first = ensure_credentials(tls_dir).cert.read_bytes()
    monkeypatch.setattr(security, "RENEW_DAYS", security.VALID_DAYS + 1)
    assert ensure_credentials(tls_dir).cert.read_bytes() != first
