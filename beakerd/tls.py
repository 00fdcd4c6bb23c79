"""HTTPS for `beakerd serve`: given certificate files, or `--tls auto` with a CA of our own.

`--tls auto` makes, under `<data_dir>/tls/`, a self-signed CA (`ca.crt`, `ca.key`) and a server
certificate it signs (`server.crt`, `server.key`) naming every address clients may use. Keys are
written 0600. Later starts reuse both; the server certificate alone is re-issued (by the same
CA, so clients keep trusting it) when it lacks a name now asked for or is close to expiry.
Clients trust the CA, never the leaf: docker reads it from `/etc/docker/certs.d/HOST:PORT/ca.crt`.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"

_CA_DAYS = 3650
_SERVER_DAYS = 825  # the most that Apple's and browsers' policies accept for a leaf
_RENEW_BEFORE = dt.timedelta(days=30)
# Every server certificate names these, so local clients work whatever host they type.
_LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert: Path
    key: Path
    # The CA clients must trust; None when the operator brought their own certificate.
    ca: Path | None = None


def host_of(address: str) -> str:
    """The host of `host:port`, `[v6]:port`, a bare host or a bare IPv6 address."""
    if address.startswith("["):
        return address[1:].partition("]")[0]
    if address.count(":") == 1:
        return address.partition(":")[0]
    return address


def server_names(*hosts: str | None) -> list[str]:
    """The names a server certificate must carry: the local ones plus `hosts`, de-duplicated.

    A wildcard listen address (0.0.0.0, ::) is no name a client can use, so it is left out.
    """
    names = dict.fromkeys(_LOCAL_NAMES)
    for host in hosts:
        if host and host not in {"0.0.0.0", "::", ""}:
            names[host.lower()] = None
    return list(names)


def _san(names: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _names_in(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    found = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return found | {dns.lower() for dns in san.get_values_for_type(x509.DNSName)}


def _write_private(path: Path, data: bytes) -> None:
    """Write a key readable by the owner only: created 0600, never widened, then renamed in."""
    staged = path.with_name(path.name + ".tmp")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(staged, path)


def _write_public(path: Path, data: bytes) -> None:
    staged = path.with_name(path.name + ".tmp")
    staged.write_bytes(data)
    staged.chmod(0o644)
    os.replace(staged, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} does not hold an EC private key")
    return key


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _make_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "beakerd"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"beakerd local CA {os.urandom(4).hex()}"),
    ])  # fmt: skip
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(folder / CA_KEY, _key_pem(key))
    _write_public(folder / CA_CERT, cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _make_server_cert(
    folder: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, names: list[str]
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_SERVER_DAYS))
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    # Key first: a crash in between leaves a cert that does not match, which is re-issued.
    _write_private(folder / SERVER_KEY, _key_pem(key))
    _write_public(folder / SERVER_CERT, cert.public_bytes(serialization.Encoding.PEM))


def _server_cert_usable(folder: Path, ca: x509.Certificate, names: list[str]) -> bool:
    cert_path, key_path = folder / SERVER_CERT, folder / SERVER_KEY
    if not cert_path.exists() or not key_path.exists():
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = _load_key(key_path)
    except ValueError:
        return False
    same_key = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return (
        same_key
        and cert.issuer == ca.subject
        and cert.not_valid_after_utc - _RENEW_BEFORE > _now()
        and set(names) <= _names_in(cert)
    )


def auto_certificates(folder: Path, names: list[str]) -> TlsFiles:
    """The CA and a server certificate for `names` under `folder`, made or reused."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_cert_path, ca_key_path = folder / CA_CERT, folder / CA_KEY
    if ca_cert_path.exists() and ca_key_path.exists():
        ca = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        ca_key = _load_key(ca_key_path)
    else:
        ca, ca_key = _make_ca(folder)
    if not _server_cert_usable(folder, ca, names):
        # Keep every name the old certificate had: an address that worked keeps working.
        old = folder / SERVER_CERT
        kept: list[str] = []
        if old.exists():
            try:
                kept = sorted(_names_in(x509.load_pem_x509_certificate(old.read_bytes())))
            except ValueError:
                kept = []
        _make_server_cert(folder, ca, ca_key, list(dict.fromkeys([*names, *kept])))
    return TlsFiles(folder / SERVER_CERT, folder / SERVER_KEY, ca_cert_path)


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A server-side context for the certificate chain and key; TLS 1.2 at least."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert, files.key)
    # HTTP/1.1 only: aiohttp speaks nothing else.
    context.set_alpn_protocols(["http/1.1"])
    return context


def client_hint(files: TlsFiles, registry_address: str) -> str:
    """What an operator must do so clients trust an auto-made certificate."""
    if files.ca is None:
        return ""
    return (
        f"TLS: clients must trust the CA {files.ca}. For docker, copy it to "
        f"/etc/docker/certs.d/{registry_address}/ca.crt; for skopeo/podman use "
        f"--cert-dir (or /etc/containers/certs.d/{registry_address}/ca.crt); for beaker-py "
        f"and curl set REQUESTS_CA_BUNDLE / --cacert {files.ca}."
    )


def auto_certificates_locked(folder: Path, names: list[str]) -> TlsFiles:
    """auto_certificates under an exclusive lock on `folder`: worker processes starting
    together (the gRPC server makes the CA on first start, even for plain HTTP) share one CA."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return auto_certificates(folder, names)
