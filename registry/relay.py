"""A blob streamed from the object store to the client socket to socket, by splice(2): the bytes
never enter this process.

Streaming through Python (read a chunk from S3 with aiobotocore, write it to the client) costs
two copies and a few event-loop turns per chunk of a few hundred KiB; on a machine shared with
the S3 server, that CPU is taken from the server and the pull runs at about half its speed.
Here the store's plain-http GET (a presigned URL, so no signing) is sent on a socket of our own,
its head read with MSG_PEEK so that not one body byte is consumed, and the body then moves from
that socket into a pipe and from the pipe into the client's socket, in the kernel.

Only where it can work: Linux (os.splice), a client connection without TLS, a store URL over
plain http, and an answer with a Content-Length of exactly the bytes asked for. Anything else is
`NotRelayable` before the response starts, and the caller streams the ordinary way.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import urllib.parse

from aiohttp import web

from storage.blobstore import BlobMissing

_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031  # linux/fcntl.h
_HEAD_LIMIT = 64 << 10
# As the S3 client's read timeout: an upstream silent for this long is given up on.
UPSTREAM_TIMEOUT = 60.0


class NotRelayable(Exception):
    """This pull cannot be relayed; nothing was sent to the client."""


def relayable(request: web.Request) -> bool:
    transport = request.transport
    return (
        hasattr(os, "splice")
        and transport is not None
        and transport.get_extra_info("sslcontext") is None
        and transport.get_extra_info("socket") is not None
    )


async def relay(
    request: web.Request, response: web.StreamResponse, url: str, start: int, count: int
) -> None:
    """Send `response` (its headers set by the caller) with `count` bytes from `start` of what
    `url` answers. BlobMissing on a 404, NotRelayable for an answer not as expected (both before
    the response starts); a connection cut short raises ConnectionResetError."""
    loop = asyncio.get_running_loop()
    upstream = await _open(loop, url, start, count)
    try:
        await _read_head(loop, upstream, count)
        await response.prepare(request)
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("the client went away")
        # A descriptor of our own for the client's socket: the event loop refuses to watch one
        # a transport owns, and nothing else writes to it until the body is sent.
        client = os.dup(transport.get_extra_info("socket").fileno())
        try:
            while transport.get_write_buffer_size():  # the head, rarely not sent at once
                await _wait(loop, client, write=True, patience=None)
            await _splice(loop, upstream.fileno(), client, count)
        finally:
            os.close(client)
    finally:
        upstream.close()
    await response.write_eof()


async def _open(loop: asyncio.AbstractEventLoop, url: str, start: int, count: int) -> socket.socket:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise NotRelayable(f"not a plain-http URL: {parts.scheme}")
    port = parts.port or 80
    family, kind, proto, _, address = (
        await loop.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    )[0]
    upstream = socket.socket(family, kind, proto)
    try:
        upstream.setblocking(False)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        head = (
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Range: bytes={start}-{start + count - 1}\r\nConnection: close\r\n\r\n"
        )
        async with asyncio.timeout(UPSTREAM_TIMEOUT):
            await loop.sock_connect(upstream, address)
            await loop.sock_sendall(upstream, head.encode("latin-1"))
    except BaseException:
        upstream.close()
        raise
    return upstream


async def _read_head(loop: asyncio.AbstractEventLoop, upstream: socket.socket, count: int) -> None:
    """Consume the answer's head, leaving its body in the socket; check it is `count` bytes."""
    while True:
        await _wait(loop, upstream.fileno(), write=False)
        seen = upstream.recv(_HEAD_LIMIT, socket.MSG_PEEK)
        end = seen.find(b"\r\n\r\n")
        if end >= 0:
            break
        if not seen or len(seen) >= _HEAD_LIMIT:
            raise NotRelayable("the store's answer has no head")
    upstream.recv(end + 4)  # exactly the head: it is all in the buffer already
    status_line, *lines = seen[:end].decode("latin-1").split("\r\n")
    status = status_line.split(" ", 2)[1] if status_line.count(" ") else ""
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if status == "404":
        raise BlobMissing("the store has no such object")
    if status not in ("200", "206") or "transfer-encoding" in headers:
        raise NotRelayable(f"the store answered {status_line!r}")
    if headers.get("content-length") != str(count):
        raise NotRelayable(f"the store sends {headers.get('content-length')} bytes, not {count}")
    if status == "200" and not headers.get("content-range", "").endswith(f"/{count}"):
        # A 200 is the whole object: fine only if the whole object was asked for.
        raise NotRelayable("the store ignored the Range")


async def _splice(loop: asyncio.AbstractEventLoop, source: int, target: int, count: int) -> None:
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        with contextlib.suppress(OSError):  # a smaller pipe only means more turns
            fcntl.fcntl(write_end, _F_SETPIPE_SZ, _PIPE_BYTES)
        flags = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
        left, piped = count, 0
        while left or piped:
            moved = False
            if left and piped < _PIPE_BYTES:
                with contextlib.suppress(BlockingIOError):
                    got = os.splice(source, write_end, min(left, _PIPE_BYTES - piped), flags=flags)
                    if got == 0:
                        raise ConnectionResetError(f"the store ended {left} bytes short")
                    left, piped, moved = left - got, piped + got, True
            if piped:
                try:
                    sent = os.splice(read_end, target, piped, flags=flags)
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionError) as e:
                    raise ConnectionResetError(f"the client went away: {e}") from None
                else:
                    piped, moved = piped - sent, True
            if not moved:
                if piped:
                    await _wait(loop, target, write=True, patience=None)
                    continue
                try:
                    await _wait(loop, source, write=False)
                except TimeoutError:
                    raise ConnectionResetError("the store went silent") from None
    finally:
        os.close(read_end)
        os.close(write_end)


async def _wait(
    loop: asyncio.AbstractEventLoop,
    fd: int,
    *,
    write: bool,
    patience: float | None = UPSTREAM_TIMEOUT,
) -> None:
    """Until `fd` is readable (or writable); a silent upstream times out, a slow client not."""
    ready: asyncio.Future[None] = loop.create_future()
    watch, unwatch = (
        (loop.add_writer, loop.remove_writer) if write else (loop.add_reader, loop.remove_reader)
    )
    watch(fd, _settle, ready)
    try:
        async with asyncio.timeout(patience):
            await ready
    finally:
        unwatch(fd)


def _settle(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)
