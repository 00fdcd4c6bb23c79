"""Clients that hang up mid-request or speak TLS to the plain port: logged as what they are."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from tests.ops.helpers import basic_auth, call, metric_value, start_upload
from tests.server import running_beakerd


def _wait_for(server_log: Callable[[], str], text: str) -> None:
    deadline = time.monotonic() + 30
    while text not in server_log():
        assert time.monotonic() < deadline, server_log()
        time.sleep(0.05)


def test_client_hanging_up_mid_upload_is_one_info_line_not_a_500(tmp_path: Path) -> None:
    with running_beakerd(tmp_path) as server:
        location = start_upload(server, "tester/hangup")
        sock = socket.create_connection(("127.0.0.1", server.port))
        head = (
            f"PATCH {location} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: {basic_auth(server)['Authorization']}\r\n"
            "Content-Type: application/octet-stream\r\nContent-Length: 10000000\r\n\r\n"
        )
        sock.sendall(head.encode() + b"x" * 200_000)
        time.sleep(0.5)  # the handler is reading the body
        sock.close()
        _wait_for(server.log, "client closed the connection")
        metrics = call(server, "GET", "/metrics", auth=False).body.decode()
    log = server.log()
    line = next(line for line in log.splitlines() if "client closed the connection" in line)
    assert " INFO beakerd.access" in line and line.split(": ", 1)[1].startswith("PATCH /v2/")
    assert "Traceback" not in log and "Error handling request" not in log, log
    assert " 500 " not in log
    assert metric_value(metrics, "beakerd_http_client_disconnects_total", method="PATCH") == 1
    assert metric_value(metrics, "beakerd_http_requests_total", status="500") == 0


def test_tls_handshake_on_the_plain_port_is_counted_as_such_not_as_an_unmatched_400(
    tmp_path: Path,
) -> None:
    with running_beakerd(tmp_path) as server:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
                client = ssl.create_default_context()
                try:
                    client.wrap_socket(raw, server_hostname="127.0.0.1")
                except ssl.SSLError as e:
                    # Go's TLS client says "server gave HTTP response to HTTPS client" here,
                    # which is how docker knows to fall back to plain HTTP.
                    assert "WRONG_VERSION_NUMBER" in str(e) or "record" in str(e).lower()
                else:
                    raise AssertionError("a plain-HTTP port completed a TLS handshake")
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            raw.sendall(b"\x16\x03\x01\x00\x05hello")
            answer = raw.recv(65536)
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert answer.endswith(b"Client sent a TLS handshake to a plain-HTTP server.\n")
        metrics = call(server, "GET", "/metrics", auth=False).body.decode()
    log = server.log()
    assert "UNKNOWN" not in log
    assert log.count("TLS handshake to this plain-HTTP port") == 1  # info once, then debug
    assert metric_value(metrics, "beakerd_connections_dropped_total", reason="tls_on_plain") == 4
    assert metric_value(metrics, "beakerd_http_requests_total", route="unmatched") == 0
