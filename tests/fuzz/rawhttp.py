"""A deliberately dumb HTTP/1.1 client: sends the exact bytes given, path and headers included.

aiohttp's and urllib's clients normalise paths (`..`, `%2e`) and refuse bad headers, which is
exactly what a hostile client does not do.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # True when the server closed the connection without answering.
    dropped: bool = False

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_request(
    host: str,
    port: int,
    method: str,
    target: str | bytes,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    content_length: str | None = None,
    half_close: bool = False,
    read_seconds: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
) -> RawResponse:
    """Send one request and read one response.

    `content_length` overrides the header (say, a lie about the body); `half_close` shuts our
    sending side after the body, which is how a client that dies mid-upload looks.
    """
    reader, writer = await asyncio.open_connection(host, port, ssl=ssl_context)
    try:
        path = target if isinstance(target, bytes) else target.encode("latin-1")
        lines = [method.encode() + b" " + path + b" HTTP/1.1", f"Host: {host}:{port}".encode()]
        items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        names = {k.lower() for k, _ in items}
        if content_length is not None:
            items.append(("Content-Length", content_length))
        elif body or method in {"PUT", "POST", "PATCH"}:
            if "content-length" not in names and "transfer-encoding" not in names:
                items.append(("Content-Length", str(len(body))))
        items.append(("Connection", "close"))
        # UTF-8 on the wire: a hostile client is not bound by latin-1 either.
        lines += [f"{k}: {v}".encode("utf-8", "surrogateescape") for k, v in items]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        if half_close and writer.can_write_eof():
            writer.write_eof()
        return await asyncio.wait_for(_read_response(reader), read_seconds)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


async def _read_response(reader: asyncio.StreamReader) -> RawResponse:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return RawResponse(0, dropped=True)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ")[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        try:
            body = await reader.readexactly(int(headers["content-length"]))
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            body = e.partial if isinstance(e, asyncio.IncompleteReadError) else b""
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        try:
            body = await reader.read()
        except ConnectionError:
            body = b""
    return RawResponse(status, headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            await reader.readline()
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readline()
