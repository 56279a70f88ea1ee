"""TLS for a batch site: a CA and a certificate in files that the workers on other nodes can read.

``distributed.security.Security.temporary()`` keeps its certificate in memory, which a
worker started by a batch system on another node never sees. Here the same kind of
credentials (made with ``cryptography``, as ``distributed`` does) are written once to
a directory on a shared path: ``ca.pem``, ``cert.pem`` and ``key.pem``, mode 0600, in a
directory of mode 0700. They are reused while valid, renewed 30 days before they
expire, and shared by the client, the scheduler and the workers, so only processes of
the user who owns the directory can join the cluster.
"""
from __future__ import annotations

import datetime
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..file_lock import locked_path
from .errors import SiteConfigError

if TYPE_CHECKING:  # for the annotations only: the functions import them where they are used
    from cryptography.x509 import Certificate
    from distributed.security import Security

CA_FILE, CERT_FILE, KEY_FILE = "ca.pem", "cert.pem", "key.pem"
VALID_DAYS = 365
RENEW_DAYS = 30
#: The name in the certificate; ``distributed`` does not check host names, only the CA.
COMMON_NAME = "dask-internal"


@dataclass(frozen=True)
class TLSFiles:
    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / CA_FILE

    @property
    def cert(self) -> Path:
        return self.directory / CERT_FILE

    @property
    def key(self) -> Path:
        return self.directory / KEY_FILE


def tls_directory(directory: str) -> Path:
    """The directory as this process sees it (``~`` and ``$VARS`` expanded)."""
    return Path(os.path.expandvars(os.path.expanduser(directory)))


def _private_directory(directory: Path) -> None:
    """Creates ``directory`` (mode 0700) or tightens it; refuses one owned by someone else."""
    missing = []
    for parent in [directory, *directory.parents]:
        if parent.exists():
            break
        missing.append(parent)
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)
    info = directory.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise SiteConfigError(f"security.directory: {directory} is not a directory")
    if info.st_uid != os.getuid():
        raise SiteConfigError(f"security.directory: {directory} belongs to uid {info.st_uid}, not to you; "
                              "TLS keys must live in a directory only you can read")
    if stat.S_IMODE(info.st_mode) != 0o700:
        directory.chmod(0o700)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One process at a time writes the files (two calibrations may start together)."""
    with locked_path(directory / ".lock", 0o600):
        yield


def _write_private(path: Path, data: bytes) -> None:
    """Writes ``path`` with mode 0600 from the start, replacing it atomically."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.timezone.utc)


def _make_credentials() -> tuple:
    """A CA certificate, and a certificate and key it signed, all PEM bytes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = _now() - datetime.timedelta(minutes=5)  # tolerate clocks a little behind on other nodes
    until = now + datetime.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "caf-hpc CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(COMMON_NAME)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca_cert.public_bytes(pem), cert.public_bytes(pem), key_pem


def _usable(files: TLSFiles) -> bool:
    """The files exist, belong together and stay valid for more than ``RENEW_DAYS``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca)
        # the same public key: compared as encoded, which every key type has (not all have numbers)
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        matching = key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)
    except Exception:  # unreadable, corrupt or mismatched: make new ones
        return False
    expires = min(_not_valid_after(ca), _not_valid_after(cert))
    return matching and expires - _now() > datetime.timedelta(days=RENEW_DAYS)


def _not_valid_after(cert: Certificate) -> datetime.datetime:
    """The expiry as an aware datetime (``not_valid_after_utc`` needs cryptography 42)."""
    expiry = getattr(cert, "not_valid_after_utc", None)
    return expiry or cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def ensure_credentials(directory: Path) -> TLSFiles:
    """The TLS files in ``directory``, created (or renewed) if needed, with modes 0700/0600."""
    directory = Path(directory)
    _private_directory(directory)
    files = TLSFiles(directory)
    with _locked(directory):
        if not _usable(files):
            ca, cert, key = _make_credentials()
            _write_private(files.key, key)
            _write_private(files.cert, cert)
            _write_private(files.ca, ca)
        for path in (files.ca, files.cert, files.key):
            if stat.S_IMODE(path.stat().st_mode) != 0o600:
                path.chmod(0o600)
    return files


def security_from_files(files: TLSFiles) -> Security:
    """A ``distributed.Security`` for every role, requiring encryption, from the files' paths."""
    from distributed.security import Security

    ca, cert, key = str(files.ca), str(files.cert), str(files.key)
    return Security(require_encryption=True, tls_ca_file=ca,
                    tls_client_cert=cert, tls_client_key=key,
                    tls_scheduler_cert=cert, tls_scheduler_key=key,
                    tls_worker_cert=cert, tls_worker_key=key)


def security_for(directory: str, create: bool = True) -> Security:
    """The site's ``Security``; ``create=False`` only names the files (for printing a job script)."""
    path = tls_directory(directory)
    files = ensure_credentials(path) if create else TLSFiles(path)
    return security_from_files(files)
