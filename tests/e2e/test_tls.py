"""HTTPS: `--tls auto` certificates, blobs streamed under TLS, a real client pulling over TLS."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import ssl
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509

from beakerd import tls
from beakerd.app import create_app
from beakerd.settings import Settings
from registry import blob_routes
from tests.e2e.oci_layout import OciLayout, random_layers
from tests.e2e.tools import require_tool, run
from tests.server import BOOTSTRAP_ACCOUNT, _spawn, free_port

# -- certificates --------------------------------------------------------------------------------


def _sans(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(
        san.get_values_for_type(x509.DNSName)
    )


def test_auto_makes_a_ca_and_a_server_certificate_with_every_local_name(tmp_path: Path) -> None:
    names = tls.server_names("0.0.0.0", tls.host_of("registry.example:5000"))
    files = tls.auto_certificates(tmp_path / "tls", names)
    assert files.ca == tmp_path / "tls" / "ca.crt"
    assert _sans(files.cert) == {"127.0.0.1", "localhost", "::1", "registry.example"}
    for key in ("ca.key", "server.key"):
        assert stat.S_IMODE((tmp_path / "tls" / key).stat().st_mode) == 0o600
    # The server certificate verifies against the CA, for each of its names.
    context = ssl.create_default_context(cafile=str(files.ca))
    server = tls.server_context(files)
    for name in ("localhost", "registry.example"):
        _handshake(server, context, name)


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, name: str) -> None:
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_in, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    s = server.wrap_bio(server_in, server_out, server_side=True)
    c = client.wrap_bio(client_in, client_out, server_hostname=name)
    for _ in range(10):
        for side in (c, s):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        server_in.write(client_out.read())
        client_in.write(server_out.read())
    assert c.version() is not None  # handshake completed, certificate accepted


def test_auto_reuses_its_files_and_keeps_the_ca_when_a_name_is_added(tmp_path: Path) -> None:
    first = tls.auto_certificates(tmp_path, tls.server_names("127.0.0.1"))
    ca, cert = first.ca.read_bytes() if first.ca else b"", first.cert.read_bytes()
    again = tls.auto_certificates(tmp_path, tls.server_names("127.0.0.1"))
    assert again.cert.read_bytes() == cert and (again.ca and again.ca.read_bytes()) == ca
    wider = tls.auto_certificates(tmp_path, tls.server_names("10.1.2.3"))
    assert wider.cert.read_bytes() != cert
    assert wider.ca and wider.ca.read_bytes() == ca
    assert {"10.1.2.3", "127.0.0.1"} <= _sans(wider.cert)


def test_host_of_understands_ipv6_and_ports() -> None:
    assert tls.host_of("[::1]:5000") == "::1"
    assert tls.host_of("example.org:443") == "example.org"
    assert tls.host_of("fe80::1") == "fe80::1"
    assert tls.host_of("example.org") == "example.org"


# -- blobs under TLS, in-process -------------------------------------------------------------------

BIG = os.urandom((3 << 20) + 12345)
RANGES = [
    None, "bytes=0-0", "bytes=0-99", "bytes=100-", "bytes=-500", f"bytes=-{len(BIG) + 10}",
    f"bytes={len(BIG) - 1}-", f"bytes={len(BIG)}-", f"bytes={len(BIG) + 5}-{len(BIG) + 9}",
    "bytes=5-2", "bytes=0-1,5-9", "bytes=abc", "items=0-5", f"bytes=1048570-{len(BIG) * 2}",
]  # fmt: skip


@dataclass
class Pair:
    plain: TestClient[Any, Any]
    secure: TestClient[Any, Any]
    client_ssl: ssl.SSLContext
    auth: dict[str, str]


@pytest.fixture
async def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Pair]:
    """One data folder served twice: over HTTP (FileResponse) and HTTPS (threaded streaming)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BEAKER_CONFIG", raising=False)
    files = tls.auto_certificates(tmp_path / "tls", tls.server_names())
    settings = Settings(data_dir=tmp_path / "data", bootstrap_account=BOOTSTRAP_ACCOUNT)
    plain_app, secure_app = create_app(settings), create_app(settings)
    client_ssl = ssl.create_default_context(cafile=str(files.ca))
    secure_server = TestServer(secure_app, host="127.0.0.1")
    # TestClient starts its server without TLS options: start this one first, with them.
    await secure_server.start_server(ssl=tls.server_context(files))
    async with (
        TestClient(TestServer(plain_app, host="127.0.0.1")) as plain,
        TestClient(secure_server) as secure,
    ):
        config = yaml.safe_load((tmp_path / "home" / ".beaker" / "config.yml").read_text())
        raw = base64.b64encode(f"{BOOTSTRAP_ACCOUNT}:{config['user_token']}".encode()).decode()
        yield Pair(plain, secure, client_ssl, {"Authorization": f"Basic {raw}"})


async def test_tls_blob_ranges_answer_exactly_as_plain_http(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    streamed: list[Path] = []

    class Counted(blob_routes.ThreadedFileResponse):
        def __init__(self, path: Path, headers: dict[str, str]) -> None:
            streamed.append(path)
            super().__init__(path, headers)

    monkeypatch.setattr(blob_routes, "ThreadedFileResponse", Counted)
    digest = "sha256:" + hashlib.sha256(BIG).hexdigest()
    resp = await pair.plain.post("/v2/tester/tls/big/blobs/uploads/", params={"digest": digest},
                                 data=BIG, headers=pair.auth)  # fmt: skip
    assert resp.status == 201
    path = f"/v2/tester/tls/big/blobs/{digest}"
    for rng in RANGES:
        headers = {**pair.auth, **({"Range": rng} if rng else {})}
        answers = []
        for client, context in ((pair.plain, True), (pair.secure, pair.client_ssl)):
            r = await client.get(path, headers=headers, ssl=context)
            body = await r.read()
            answers.append((
                r.status, r.headers.get("Content-Range"), r.headers.get("Content-Length"),
                r.headers.get("Docker-Content-Digest"), r.headers.get("Accept-Ranges"),
                r.headers.get("Docker-Distribution-API-Version"), body,
            ))  # fmt: skip
        assert answers[0] == answers[1], rng
        if rng is None:
            assert answers[1][-1] == BIG
    # Every HTTPS GET went through the threaded streamer, none through FileResponse.
    assert len(streamed) == len(RANGES)


async def test_token_realm_is_https_under_tls(pair: Pair) -> None:
    resp = await pair.secure.get("/v2/", ssl=pair.client_ssl)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith('Bearer realm="https://')


# -- a real server and a real client -----------------------------------------------------------


@dataclass
class TlsServer:
    port: int
    data_dir: Path
    home: Path
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path:
        return self.data_dir / "tls" / "ca.crt"

    @property
    def password(self) -> str:
        config = yaml.safe_load((self.home / ".beaker" / "config.yml").read_text())
        return str(config["user_token"])


def _wait_tls_ready(server: TlsServer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"beakerd exited early:\n{server.log_path.read_text()}")
        if server.ca.exists():
            context = ssl.create_default_context(cafile=str(server.ca))
            try:
                urllib.request.urlopen(f"https://{server.address}/v2/", timeout=2, context=context)
                return
            except urllib.error.HTTPError:
                return  # 401: up, and it spoke TLS with a certificate the CA vouches for
            except (OSError, ssl.SSLError):
                pass
        time.sleep(0.05)
    raise RuntimeError(f"beakerd did not start within {timeout}s:\n{server.log_path.read_text()}")


@contextlib.contextmanager
def running_tls_beakerd(tmp: Path, extra_args: tuple[str, ...] = ()) -> Iterator[TlsServer]:
    home, data_dir, log_path = tmp / "home", tmp / "data", tmp / "beakerd.log"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = _spawn(port, data_dir, home, log_path, ["--tls", "auto", *extra_args])
    server = TlsServer(port, data_dir, home, proc, log_path)
    try:
        _wait_tls_ready(server)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.e2e
def test_skopeo_pushes_and_pulls_over_tls_with_the_auto_ca(tmp_path: Path) -> None:
    require_tool("skopeo")
    with running_tls_beakerd(tmp_path / "server") as server:
        assert f"/etc/docker/certs.d/{server.address}/ca.crt" in server.log_path.read_text()
        # skopeo reads *.crt from the cert dir as CAs to trust; nothing is turned off.
        certs = tmp_path / "certs"
        certs.mkdir()
        (certs / "ca.crt").write_bytes(server.ca.read_bytes())
        layout = OciLayout(tmp_path / "source")
        image = layout.add_image(
            [{"big.bin": os.urandom(3 << 20)}, *random_layers(1, 10_000, b"t")]
        )
        layout.tag(image, "v1")
        login = f"{BOOTSTRAP_ACCOUNT}:{server.password}"
        env = dict(os.environ, REGISTRY_AUTH_FILE=str(tmp_path / "auth.json"))
        ref = f"docker://{server.address}/tester/tls/skopeo:v1"
        copy = ["skopeo", "--insecure-policy", "copy", "--preserve-digests"]
        run([*copy, f"--dest-cert-dir={certs}", f"--dest-creds={login}",
             f"oci:{layout.root}:v1", ref], env=env)  # fmt: skip
        out = OciLayout(tmp_path / "out")
        run([*copy, f"--src-cert-dir={certs}", f"--src-creds={login}", ref,
             f"oci:{out.root}:v1"], env=env)  # fmt: skip
        assert out.resolve("v1").digest == image.digest
        manifest = layout.read_json(image.digest)
        for blob in [manifest["config"], *manifest["layers"]]:
            assert out.read_blob(blob["digest"]) == layout.read_blob(blob["digest"])
        # Without the CA, the client refuses the server: the certificate is really checked.
        refused = run(["skopeo", "inspect", f"--creds={login}", ref], env=env, check=False)
        assert refused.returncode != 0 and "certificate" in refused.stdout.lower()


def test_plain_http_to_the_tls_port_gets_a_plain_answer_and_tls_still_works(
    tmp_path: Path,
) -> None:
    with running_tls_beakerd(tmp_path) as server:
        for request in (b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n", b"GET / HTTP/1.0\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
                raw.sendall(request)
                answer = b""
                while piece := raw.recv(65536):
                    answer += piece
            assert answer == (
                b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
            )
        context = ssl.create_default_context(cafile=str(server.ca))
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"https://{server.address}/v2/", timeout=10, context=context)
        assert refused.value.code == 401
    log = server.log_path.read_text()
    assert log.count("plain HTTP to this HTTPS port") == 1  # info once, then debug


def test_silent_connections_and_stalled_handshakes_on_the_tls_port_are_closed(
    tmp_path: Path,
) -> None:
    with running_tls_beakerd(tmp_path, ("--header-read-timeout", "1")) as server:
        silent = socket.create_connection(("127.0.0.1", server.port))
        stalled = socket.create_connection(("127.0.0.1", server.port))
        stalled.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, no more
        started = time.monotonic()
        for sock in (silent, stalled):
            sock.settimeout(10)
            with contextlib.suppress(ConnectionResetError):
                while sock.recv(65536):
                    pass
            sock.close()
        assert time.monotonic() - started < 8
        # Others are served meanwhile and after.
        context = ssl.create_default_context(cafile=str(server.ca))
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"https://{server.address}/v2/", timeout=10, context=context)
        assert refused.value.code == 401
