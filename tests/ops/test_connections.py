"""Slow, idle and too many clients: head deadline, keep-alive timeout, the connection cap."""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.ops.helpers import basic_auth, call, metric_value, start_upload
from tests.server import Server, _spawn, _wait_ready, free_port, running_beakerd

HALF_HEAD = b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow"


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes `sock` within `within` seconds (reading what it sends)."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


@contextlib.contextmanager
def _fd_limited_beakerd(
    tmp: Path, extra_args: list[str], soft: int = 1024, hard: int = 1024
) -> Iterator[Server]:
    """A beakerd started with RLIMIT_NOFILE at `soft`/`hard` (by default 1024 for both, so
    the server cannot raise its way out of it)."""
    home, data_dir, log_path = tmp / "home", tmp / "data", tmp / "beakerd.log"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    original = subprocess.Popen.__init__

    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    def limited(self: subprocess.Popen[bytes], *args: object, **kwargs: object) -> None:
        original(self, *args, preexec_fn=set_limit, **kwargs)  # type: ignore[arg-type]

    subprocess.Popen.__init__ = limited  # type: ignore[assignment,method-assign]
    try:
        proc = _spawn(port, data_dir, home, log_path, extra_args)
    finally:
        subprocess.Popen.__init__ = original  # type: ignore[method-assign]
    server = Server(port, data_dir, home, proc, log_path, extra_args)
    try:
        _wait_ready(server)
        yield server
    finally:
        server.stop()


def test_1100_half_sent_heads_under_a_1024_fd_limit_do_not_stop_other_clients(
    tmp_path: Path,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this test holds 1,100 sockets
    held: list[socket.socket] = []
    try:
        # A head deadline longer than the test: the cap alone must keep the server serving.
        with _fd_limited_beakerd(tmp_path, ["--header-read-timeout", "300"]) as server:
            for _ in range(1100):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                sock.sendall(HALF_HEAD)
                held.append(sock)
            started = time.monotonic()
            reply = call(server, "GET", "/v2/", auth=False)
            assert reply.status == 401
            assert time.monotonic() - started < 10
            metrics = call(server, "GET", "/metrics", auth=False).body.decode()
            evicted = metric_value(metrics, "beakerd_connections_dropped_total", reason="evicted")
            assert evicted >= 100  # the cap (480 here) was reached, and held
            assert server.proc.poll() is None
        log = server.log()
    finally:
        for sock in held:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert "at most 480 connections per process" in log
    # One warning for the lot, not one per connection or per accept.
    assert log.count("connections open, the limit") <= 3, log
    assert "out of system resource" not in log and "Traceback" not in log, log


def test_request_head_that_never_completes_is_closed(tmp_path: Path) -> None:
    with running_beakerd(tmp_path, ["--header-read-timeout", "1"]) as server:
        silent = socket.create_connection(("127.0.0.1", server.port))
        slow = socket.create_connection(("127.0.0.1", server.port))
        slow.sendall(HALF_HEAD)
        # A second request on a keep-alive connection has its own deadline.
        second = socket.create_connection(("127.0.0.1", server.port))
        second.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        second.settimeout(10)
        assert second.recv(65536).startswith(b"HTTP/1.1 200")
        second.sendall(HALF_HEAD)
        started = time.monotonic()
        for sock in (silent, slow, second):
            assert _closed_by_server(sock, within=10)
            sock.close()
        assert time.monotonic() - started < 8
        metrics = call(server, "GET", "/metrics", auth=False).body.decode()
        timeouts = metric_value(metrics, "beakerd_connections_dropped_total", reason="head_timeout")
        assert timeouts == 3
        # A client that sends its head in pieces, in time, is served.
        piecemeal = socket.create_connection(("127.0.0.1", server.port))
        for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
            piecemeal.sendall(piece)
            time.sleep(0.3)
        piecemeal.settimeout(10)
        assert piecemeal.recv(65536).startswith(b"HTTP/1.1 200")
        piecemeal.close()


def test_idle_keepalive_connection_is_closed_after_the_keepalive_timeout(tmp_path: Path) -> None:
    with running_beakerd(tmp_path, ["--keepalive-timeout", "1"]) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() is not None
        assert conn.sock is not None
        started = time.monotonic()
        assert _closed_by_server(conn.sock, within=10)
        assert time.monotonic() - started < 8
        conn.close()


def _serve_on_taken_port(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        return subprocess.run(
            [sys.executable, "-m", "beakerd", "serve", "--port", str(port),
             "--data-dir", str(tmp_path / "data"), *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip


def test_port_in_use_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    for args in ([], ["--workers", "2"]):
        result = _serve_on_taken_port(tmp_path, *args)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        problem = [line for line in lines if "cannot listen" in line]
        assert len(problem) == 1, result.stderr
        assert problem[0].startswith("beakerd: cannot listen on 127.0.0.1:")
        assert problem[0].endswith(": address already in use")
        assert "listening on" not in result.stderr and "Traceback" not in result.stderr


def test_listening_is_logged_once_the_port_answers(tmp_path: Path) -> None:
    for args in ([], ["--workers", "2"]):
        with running_beakerd(tmp_path / str(len(args)), args) as server:
            deadline = time.monotonic() + 30
            while "listening on" not in server.log():
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.05)
            assert f"listening on http://127.0.0.1:{server.port}" in server.log()
            assert server.log().count("listening on") == 1


def test_accept_failing_for_lack_of_descriptors_is_one_warning_not_a_flood() -> None:
    import asyncio
    import logging

    from beakerd.listener import Acceptor

    class Exhausted(socket.socket):
        accepts = 0

        def accept(self) -> tuple[socket.socket, object]:
            Exhausted.accepts += 1
            raise OSError(errno.EMFILE, "Too many open files")

    class Table:
        on_room = None
        at_cap = False

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("beakerd.listener")
    handler = Keep()
    logger.addHandler(handler)

    async def scenario() -> None:
        with Exhausted() as listener, socket.socket() as client:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            listener.setblocking(False)
            client.connect(listener.getsockname())  # readable from now on, never accepted
            acceptor = Acceptor([listener], Table())  # type: ignore[arg-type]
            acceptor.start()
            await asyncio.sleep(3.5)
            acceptor.stop()

    try:
        asyncio.run(scenario())
    finally:
        logger.removeHandler(handler)
    assert Exhausted.accepts >= 3  # it kept trying, about once a second
    warnings = [r for r in records if "cannot accept connections" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in records]
    assert "Too many open files" in warnings[0].getMessage()


def test_server_raises_its_soft_fd_limit_to_the_hard_one(tmp_path: Path) -> None:
    with _fd_limited_beakerd(tmp_path, [], soft=1024, hard=4096) as server:
        limits = Path(f"/proc/{server.proc.pid}/limits").read_text()
        row = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert row.split()[3:5] == ["4096", "4096"], row
    # The cap follows the raised limit: (4096 - 64 spare) // 2, not 480.
    assert "at most 2016 connections per process" in server.log()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_at_the_cap_with_every_connection_busy_new_ones_wait_without_spinning(
    tmp_path: Path,
) -> None:
    with running_beakerd(tmp_path, ["--max-connections", "2"]) as server:
        uploads = []
        for n in range(2):
            location = start_upload(server, f"tester/busy{n}")
            sock = socket.create_connection(("127.0.0.1", server.port))
            head = (
                f"PATCH {location} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                f"Authorization: {basic_auth(server)['Authorization']}\r\n"
                "Content-Type: application/octet-stream\r\nContent-Length: 2000\r\n\r\n"
            )
            sock.sendall(head.encode() + b"x" * 1000)  # half the body: the handler is busy
            uploads.append(sock)
        time.sleep(0.5)
        waiting = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        waiting.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        cpu_before = _cpu_seconds(server.proc.pid)
        waiting.settimeout(2)
        with contextlib.suppress(TimeoutError):
            early = waiting.recv(65536)
            raise AssertionError(f"served past the cap while both were busy: {early!r}")
        # Waiting in the backlog costs nothing: no accept-and-close loop.
        assert _cpu_seconds(server.proc.pid) - cpu_before < 0.5
        uploads[0].sendall(b"x" * 1000)  # the first upload completes; its slot frees
        uploads[0].settimeout(10)
        assert uploads[0].recv(65536).startswith(b"HTTP/1.1 202")
        waiting.settimeout(10)
        assert waiting.recv(65536).startswith(b"HTTP/1.1 200")
        for sock in (*uploads, waiting):
            sock.close()
