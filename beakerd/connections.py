"""The connections of one server process: how many, how long a request head may take, and what
to do with a first byte that speaks the wrong protocol.

Every accepted socket (beakerd/listener.py accepts them) becomes a `Connection` in the process's
`ConnectionTable` before aiohttp sees a byte of it:

- a request head (request line and headers) must arrive whole within `header_read_timeout`
  of its first byte, and a connection's first head (TLS handshake included) within that of its
  opening; otherwise the connection is closed. Idle keep-alive connections are aiohttp's
  `keepalive_timeout`, set from the settings.
- at most `cap` connections are open at once (`max_connections`, lowered to fit the file
  descriptor limit: each may hold a socket and a blob file). At the cap, a new connection
  displaces the longest-waiting one that has no request in flight, half-sent heads first (as
  nginx reuses idle connections); when every one is busy, accepting pauses and new connections
  wait in the kernel's listen backlog until one closes.
- on a TLS port the first byte is peeked (MSG_PEEK, before any transport reads it): 0x16 is a
  TLS handshake; anything else gets Go's plain-text answer, "Client sent an HTTP request to an
  HTTPS server.". On a plain port, a first chunk that is a TLS handshake (docker and podman
  try HTTPS first for 127.0.0.1 registries) gets a 400 without reaching aiohttp, so it is not
  logged as an `UNKNOWN / 400` request but counted as what it is.

Events that can come by the thousand are logged through throttled_log.Throttled; each drop is
counted in `beakerd_connections_dropped_total{reason}`.

What this reads of aiohttp's RequestHandler beyond its protocol interface: `_request_count`
(heads parsed so far) and `_waiter` (pending while it waits for the next request, which is
also what aiohttp's own keep-alive check looks at). Not `_request_in_progress`: between a head
being parsed and its handler starting, that is still false while body bytes arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from beakerd import metrics
from beakerd.throttled_log import Throttled

log = logging.getLogger("beakerd.connections")

TLS_HANDSHAKE = 0x16  # the content type of a TLS handshake record: a ClientHello starts so
# Go's net/http answer, word for word: clients and people know it.
HTTP_ON_TLS_ANSWER = (
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)
_TLS_ON_PLAIN_TEXT = b"Client sent a TLS handshake to a plain-HTTP server.\n"
TLS_ON_PLAIN_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
    % (len(_TLS_ON_PLAIN_TEXT), _TLS_ON_PLAIN_TEXT)
)
# After such an answer, how long the client has to read it before the connection is reset.
_ANSWER_LINGER_SECONDS = 1.0
# File descriptors kept for everything but connections: the database, logs, the listeners.
_SPARE_FDS = 64


def raise_fd_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and hard != resource.RLIM_INFINITY:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_cap(max_connections: int, fd_limit: int) -> int:
    """How many connections fit: a socket and a blob file each, besides the spare descriptors."""
    if fd_limit == resource.RLIM_INFINITY:
        return max_connections
    return max(1, min(max_connections, (fd_limit - _SPARE_FDS) // 2))


@dataclass(frozen=True)
class Limits:
    cap: int
    header_read_timeout: float


class Connection(asyncio.Protocol):
    """One client connection: aiohttp's RequestHandler, made at its first byte, behind a
    deadline for each request head."""

    def __init__(self, table: ConnectionTable, sock: socket.socket) -> None:
        self.table = table
        self.sock: socket.socket | None = sock  # ours until a transport takes it
        self.opening: asyncio.Task[None] | None = None
        self.transport: asyncio.Transport | None = None
        self.handler: RequestHandler | None = None
        self.encrypted = False
        self.answered = False
        self.heads = 0
        self.deadline: asyncio.TimerHandle | None = None

    # -- state the table reads -------------------------------------------------------------

    @property
    def waiting(self) -> bool:
        """No request is being read or served: nothing is lost if this connection closes."""
        handler = self.handler
        if handler is None:
            return True
        waiter = handler._waiter
        return waiter is not None and not waiter.done()

    @property
    def head_pending(self) -> bool:
        """Waiting for a request head (or a TLS handshake) to complete."""
        return self.deadline is not None and self.waiting

    # -- opening ---------------------------------------------------------------------------

    def start(self) -> None:
        self._arm(self.table.limits.header_read_timeout)
        loop = asyncio.get_running_loop()
        if self.table.ssl_context is None:
            self.opening = loop.create_task(self._open(None))
        else:
            assert self.sock is not None
            loop.add_reader(self.sock.fileno(), self._sniff)

    def _sniff(self) -> None:
        """On a TLS port: peek at the first byte, which stays for whoever reads next."""
        sock = self.sock
        assert sock is not None
        asyncio.get_running_loop().remove_reader(sock.fileno())
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            asyncio.get_running_loop().add_reader(sock.fileno(), self._sniff)
            return
        except OSError:
            first = b""
        if not first:
            self.close()
            return
        self.encrypted = first[0] == TLS_HANDSHAKE
        context = self.table.ssl_context if self.encrypted else None
        self.opening = asyncio.get_running_loop().create_task(self._open(context))

    async def _open(self, context: ssl.SSLContext | None) -> None:
        sock, self.sock = self.sock, None
        assert sock is not None
        loop = asyncio.get_running_loop()
        try:
            if context is None:
                await loop.connect_accepted_socket(lambda: self, sock)
            else:
                remaining = self.deadline.when() - loop.time() if self.deadline else 1.0
                await loop.connect_accepted_socket(
                    lambda: self, sock, ssl=context, ssl_handshake_timeout=max(remaining, 0.1)
                )
        except OSError as e:  # ssl.SSLError is one: the handshake failed or timed out
            if context is not None:
                log.debug("TLS handshake failed: %s", e)
                metrics.connections_dropped.inc(1.0, ("tls_handshake_failed",))
            self._disarm()
            self._forget()
        finally:
            self.opening = None

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        handler = self.handler
        if handler is None:
            if self.answered:
                return  # what follows an answered odd first chunk is dropped
            if self.table.ssl_context is None:
                if data[0] == TLS_HANDSHAKE:
                    self._answer(TLS_ON_PLAIN_ANSWER, "tls_on_plain")
                    return
            elif not self.encrypted:
                self._answer(HTTP_ON_TLS_ANSWER, "http_on_tls")
                return
            assert self.transport is not None
            handler = self.handler = self.table.server()
            handler.connection_made(self.transport)
        handler.data_received(data)
        heads = handler._request_count
        if heads != self.heads:
            self.heads = heads
            self._disarm()
        elif self.deadline is None and self.waiting:
            self._arm(self.table.limits.header_read_timeout)  # a new head has begun

    def eof_received(self) -> bool | None:
        if self.handler is not None:
            self.handler.eof_received()
        return None  # close, as aiohttp's handler has its transport do

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        self._forget()
        if self.handler is not None:
            self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.resume_writing()

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close at once (a reset, not a goodbye): frees the descriptor now."""
        self._disarm()
        if self.transport is not None:
            self.transport.abort()
        elif self.opening is not None:
            self.opening.cancel()  # asyncio closes the half-made transport
        elif self.sock is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        self._forget()

    def drop(self, reason: str) -> None:
        metrics.connections_dropped.inc(1.0, (reason,))
        self.close()

    def _answer(self, text: bytes, reason: str) -> None:
        """Tell a client that spoke the wrong protocol so, then hang up once it has read it."""
        transport = self.transport
        assert transport is not None
        self.answered = True
        metrics.connections_dropped.inc(1.0, (reason,))
        self.table.tell(reason)
        transport.write(text)
        if transport.can_write_eof():
            transport.write_eof()
        self._disarm()
        self.deadline = asyncio.get_running_loop().call_later(_ANSWER_LINGER_SECONDS, self.close)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self.deadline = asyncio.get_running_loop().call_later(seconds, self._head_timed_out)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _head_timed_out(self) -> None:
        self.deadline = None
        handler = self.handler
        if handler is not None and (handler._request_count != self.heads or not self.waiting):
            return
        log.debug(
            "closing a connection whose request head did not arrive within %gs",
            self.table.limits.header_read_timeout,
        )
        self.drop("head_timeout")

    def _forget(self) -> None:
        self.table.forget(self)


_TOLD = {
    "tls_on_plain": "a client sent a TLS handshake to this plain-HTTP port (docker and podman"
    " try HTTPS first, then plain HTTP, for 127.0.0.1 and insecure registries): answered 400."
    " Further ones are logged at debug level and counted in"
    ' beakerd_connections_dropped_total{reason="tls_on_plain"}',
    "http_on_tls": "a client sent plain HTTP to this HTTPS port: answered 400 'Client sent an"
    " HTTP request to an HTTPS server.' Further ones are logged at debug level and counted in"
    ' beakerd_connections_dropped_total{reason="http_on_tls"}',
}


class ConnectionTable:
    """This process's open connections, oldest first, held to `limits.cap`."""

    def __init__(
        self, server: web.Server, limits: Limits, ssl_context: ssl.SSLContext | None
    ) -> None:
        self.server = server
        self.limits = limits
        self.ssl_context = ssl_context
        self.live: dict[Connection, None] = {}  # insertion order: oldest first
        self.told: set[str] = set()
        # Called once when a connection closes after make_room() said no.
        self.on_room: Callable[[], None] | None = None
        self.evicting = Throttled(
            log, "%d connections open, the limit: closing the longest-waiting idle ones"
        )
        self.full = Throttled(
            log, "%d connections open, the limit, all busy: new ones wait in the listen backlog"
        )

    def __len__(self) -> int:
        return len(self.live)

    @property
    def at_cap(self) -> bool:
        return len(self.live) >= self.limits.cap

    def make_room(self) -> bool:
        """At the cap: close the longest-waiting idle connection; False if all are busy."""
        victim = self._longest_waiting()
        if victim is None:
            self.full.note(len(self.live))
            return False
        self.evicting.note(len(self.live))
        victim.drop("evicted")
        return True

    def _longest_waiting(self) -> Connection | None:
        idle: Connection | None = None
        for conn in self.live:
            if conn.head_pending:
                return conn
            if idle is None and conn.waiting:
                idle = conn
        return idle

    def open(self, sock: socket.socket) -> None:
        conn = Connection(self, sock)
        self.live[conn] = None
        conn.start()

    def forget(self, conn: Connection) -> None:
        if conn not in self.live:
            return
        del self.live[conn]
        on_room, self.on_room = self.on_room, None
        if on_room is not None:
            on_room()

    def close_unserved(self) -> None:
        """Close connections that have not begun a request (as the server stops)."""
        for conn in list(self.live):
            if conn.handler is None:
                conn.close()

    def tell(self, reason: str) -> None:
        """Log an odd client's first visit at info, the rest at debug."""
        if reason in self.told:
            log.debug("%s", _TOLD[reason])
        else:
            self.told.add(reason)
            log.info("%s", _TOLD[reason])

    def stop(self) -> None:
        self.evicting.cancel()
        self.full.cancel()
