"""SIGTERM: stop accepting, let requests in flight finish within the grace time, and leave an
upload cut off by the end of the grace time resumable from its last acknowledged offset."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import time
from pathlib import Path

from tests.ops.helpers import basic_auth, call, read_response, start_upload
from tests.server import Server, running_beakerd


def _wait_for(condition: object, what: str, limit: float = 30.0) -> None:
    """Poll until `condition()` holds (a liveness bound, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def _partial_file(server: Server, location: str) -> Path:
    return server.data_dir / "uploads" / location.rsplit("/", 1)[1]


def _refuses_connections(server: Server) -> bool:
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    except OSError:
        return True
    return False


def _begin_patch(
    server: Server, location: str, start: int, total: int, first: bytes
) -> socket.socket:
    """Send a PATCH's headers and the first part of its body; the rest is sent later (or never)."""
    headers = {
        **basic_auth(server),
        "Host": server.address,
        "Content-Type": "application/octet-stream",
        "Content-Length": str(total),
        "Content-Range": f"{start}-{start + total - 1}",
        "Connection": "close",
    }
    head = f"PATCH {location} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(head.encode() + b"\r\n" + first)
    return sock


def test_request_in_flight_finishes_after_sigterm(tmp_path: Path) -> None:
    data = os.urandom(6 << 20)
    half = len(data) // 2
    with running_beakerd(tmp_path, ["--shutdown-grace", "60"]) as server:
        location = start_upload(server, "tester/graceful")
        sock = _begin_patch(server, location, 0, len(data), data[:half])
        # The handler is streaming the body to disk: the request is in flight.
        _wait_for(lambda: _partial_file(server, location).stat().st_size > 0, "the upload to start")
        server.proc.send_signal(signal.SIGTERM)
        _wait_for(lambda: _refuses_connections(server), "the listener to close")
        sock.sendall(data[half:])
        status, raw = read_response(sock)
        sock.close()
        assert status == 202, raw[:500]
        assert server.proc.wait(timeout=60) == 0

        server.restart()
        status_reply = call(server, "GET", location)
        assert status_reply.status == 204
        assert status_reply.headers["Range"] == f"0-{len(data) - 1}"


def test_upload_cut_off_at_the_end_of_grace_is_resumable(tmp_path: Path) -> None:
    data = os.urandom(8 << 20)
    first = 2 << 20
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with running_beakerd(tmp_path, ["--shutdown-grace", "0.5"]) as server:
        location = start_upload(server, "tester/cutoff")
        reply = call(server, "PATCH", location, data[:first], {"Content-Range": f"0-{first - 1}"})
        assert reply.status == 202
        # The second chunk never completes: the client stalls mid-body.
        sock = _begin_patch(
            server, location, first, len(data) - first, data[first : first + (3 << 20)]
        )
        _wait_for(
            lambda: _partial_file(server, location).stat().st_size > first, "the chunk to stream"
        )
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0
        sock.close()

        server.restart()
        status = call(server, "GET", location)
        assert status.status == 204
        assert status.headers["Range"] == f"0-{first - 1}"  # the cut-off chunk was not acknowledged
        reply = call(
            server, "PATCH", location, data[first:], {"Content-Range": f"{first}-{len(data) - 1}"}
        )
        assert reply.status == 202
        assert call(server, "PUT", f"{location}?digest={digest}").status == 201
        blob = call(server, "GET", f"/v2/tester/cutoff/blobs/{digest}")
        assert blob.status == 200 and blob.body == data
