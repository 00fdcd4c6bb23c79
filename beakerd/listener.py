"""Listening sockets and the accept loop of `beakerd serve`, as an aiohttp site.

Not `loop.create_server`: on EMFILE its accept loop logs "socket.accept() out of system
resource" with a traceback and retries every second, a line per second for as long as the
descriptors are short; it cannot pause at a connection cap, nor let the first byte of a
connection choose between TLS and a plain answer (beakerd/connections.py). Here:

- `bind` creates the listeners before the app starts, so a taken port fails at once and the
  "listening" line is only logged once the server does listen;
- `Acceptor` accepts in batches when a listener is readable, hands each socket to the
  ConnectionTable (at its cap, once it has closed an idle connection to make room), and stops
  accepting while the table is full of busy connections or the process is out of
  descriptors: new connections wait in the listen backlog, and the log gets one warning per
  interval, not one per accept;
- `GuardedSite` plugs that into aiohttp's runner, so graceful shutdown (workers._drain) and
  runner.cleanup stop it like any site.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl

from aiohttp import web

from beakerd.connections import ConnectionTable
from beakerd.throttled_log import Throttled

log = logging.getLogger("beakerd.listener")

BACKLOG = 1024
# Connections accepted per readiness event, before other work gets the loop again.
_ACCEPT_BATCH = 64
# After running out of descriptors (or memory): try again this soon, or when one closes.
_RETRY_SECONDS = 1.0
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class ListenError(Exception):
    """The address cannot be listened on; the message is one line for the operator."""


def bind(host: str, port: int, *, reuse_port: bool = False) -> list[socket.socket]:
    """Listening sockets for every address `host` names (IPv6 ones IPv6-only, as asyncio)."""
    try:
        return _bind(host, port, reuse_port)
    except OSError as e:
        reason = e.strerror or str(e)
        raise ListenError(
            f"cannot listen on {host}:{port}: {reason[:1].lower()}{reason[1:]}"
        ) from None


def _bind(host: str, port: int, reuse_port: bool) -> list[socket.socket]:
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Acceptor:
    """Accepts connections on `listeners` into `table`, pausing when it must."""

    def __init__(self, listeners: list[socket.socket], table: ConnectionTable) -> None:
        self.listeners = listeners
        self.table = table
        self.accepting = False
        self.stopped = False
        self.retry: asyncio.TimerHandle | None = None
        self.out_of_resources = Throttled(log, "cannot accept connections: %s; retrying")

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for listener in self.listeners:
            loop.add_reader(listener.fileno(), self._ready, listener)
        self.accepting = True

    def _pause(self) -> None:
        loop = asyncio.get_running_loop()
        for listener in self.listeners:
            loop.remove_reader(listener.fileno())
        self.accepting = False

    def _resume(self) -> None:
        if self.retry is not None:
            self.retry.cancel()
            self.retry = None
        if not self.accepting and not self.stopped:
            self.start()

    def _ready(self, listener: socket.socket) -> None:
        table = self.table
        for attempt in range(_ACCEPT_BATCH):
            if table.at_cap:
                if attempt:
                    return  # if more are waiting, the listener is still readable
                if not table.make_room():
                    # Every connection is busy: new ones wait in the backlog until one closes.
                    self._pause()
                    table.on_room = self._resume
                    return
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as e:
                if e.errno not in _OUT_OF_RESOURCES:
                    log.warning("accepting a connection failed: %s", e)
                    return
                # Descriptors are held by files too, not only by connections (Linux keeps
                # reporting the listener readable, so it is set aside meanwhile).
                self.out_of_resources.note(e.strerror or e)
                self._pause()
                table.on_room = self._resume
                self.retry = asyncio.get_running_loop().call_later(_RETRY_SECONDS, self._resume)
                return
            sock.setblocking(False)
            table.open(sock)

    def stop(self) -> None:
        if self.accepting:
            self._pause()
        self.stopped = True
        if self.retry is not None:
            self.retry.cancel()
        self.out_of_resources.cancel()
        for listener in self.listeners:
            listener.close()


class GuardedSite(web.BaseSite):
    """An aiohttp site serving `listeners` through a ConnectionTable."""

    def __init__(
        self,
        runner: web.BaseRunner,
        listeners: list[socket.socket],
        table: ConnectionTable,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self.table = table
        self.acceptor = Acceptor(listeners, table)
        host, port = listeners[0].getsockname()[:2]
        self._port = int(port)
        scheme = "https" if ssl_context else "http"
        self._name = f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        await super().start()
        self.acceptor.start()

    async def stop(self) -> None:
        self.acceptor.stop()
        self.table.close_unserved()
        self.table.stop()
        await super().stop()
