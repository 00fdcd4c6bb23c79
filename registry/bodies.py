"""Request bodies, streamed: blobs in batches of about 1 MiB, manifests with a size cap.

Registry bodies are taken only as sent: a Content-Encoding other than identity is refused with
415 UNSUPPORTED before anything is read. aiohttp inflates gzip, deflate, br and zstd request
bodies on the way in, so accepting one would store (and hash) the inflated bytes rather than
those the client digested, and let a small body inflate to fill the disk; no registry client
(docker, containerd, skopeo, podman, oras) compresses request bodies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from registry.errors import ErrorCode, RegistryError

BATCH_BYTES = 1 << 20
# Seconds a body may send nothing before it is abandoned (a stalled or hostile client must
# not hold an upload's lock, a worker's memory or a socket forever). The app sets it from
# the settings; in-process tests set it small.
BODY_READ_TIMEOUT = web.AppKey("body_read_timeout", float)
DEFAULT_BODY_READ_TIMEOUT = 60.0


def read_timeout(request: web.Request) -> float:
    return request.app.get(BODY_READ_TIMEOUT, DEFAULT_BODY_READ_TIMEOUT)


async def _read_some(request: web.Request, seconds: float, code: ErrorCode) -> bytes:
    """The next piece of the body, or 408 when none arrives within `seconds`.

    Nothing read by this request is acknowledged by then, so an upload session stays at
    its last acknowledged offset and the client may resume from there.
    """
    try:
        async with asyncio.timeout(seconds):
            return await request.content.readany()
    except TimeoutError:
        raise RegistryError(
            code,
            f"request body stalled: nothing received for {seconds:g} s",
            status=408,
            headers={"Connection": "close"},
        ) from None


def declared_length(request: web.Request) -> int | None:
    value = request.headers.get("Content-Length")
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()):
        raise RegistryError(ErrorCode.SIZE_INVALID, "Content-Length is not a number")
    return int(value)


def refuse_encoded(request: web.Request) -> None:
    """415 for a body sent with a Content-Encoding; the connection closes rather than drain it."""
    encodings = [
        value.strip().lower()
        for header in request.headers.getall("Content-Encoding", [])
        for value in header.split(",")
    ]
    if any(encoding not in ("", "identity") for encoding in encodings):
        raise RegistryError(
            ErrorCode.UNSUPPORTED,
            "request bodies must be sent as is: Content-Encoding is not supported here",
            status=415,
            headers={"Connection": "close"},
        )


def has_body(request: web.Request) -> bool:
    length = declared_length(request)
    return bool(length) or (length is None and request.body_exists)


def batches(request: web.Request) -> AsyncIterator[bytes]:
    """The body in batches of about BATCH_BYTES; raises SIZE_INVALID if it ends short.

    An encoded body is refused here, at once, before the caller starts an upload with it.
    """
    refuse_encoded(request)
    return _batches(request)


async def _batches(request: web.Request) -> AsyncIterator[bytes]:
    expected = declared_length(request)
    received = 0
    pending: list[bytes] = []
    pending_bytes = 0
    timeout = read_timeout(request)
    while True:
        data = await _read_some(request, timeout, ErrorCode.BLOB_UPLOAD_INVALID)
        if not data:
            break
        pending.append(data)
        pending_bytes += len(data)
        if pending_bytes >= BATCH_BYTES:
            received += pending_bytes
            yield b"".join(pending)
            pending, pending_bytes = [], 0
    if pending:
        received += pending_bytes
        yield b"".join(pending)
    if expected is not None and received != expected:
        raise RegistryError(
            ErrorCode.SIZE_INVALID, f"body ended after {received} of {expected} bytes"
        )


async def read_capped(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing (413) anything over `limit` without reading it all."""
    refuse_encoded(request)
    expected = declared_length(request)
    too_big = RegistryError(ErrorCode.MANIFEST_INVALID, f"body exceeds {limit} bytes", status=413)
    if expected is not None and expected > limit:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    timeout = read_timeout(request)
    while True:
        data = await _read_some(request, timeout, ErrorCode.MANIFEST_INVALID)
        if not data:
            break
        size += len(data)
        if size > limit:
            raise too_big
        chunks.append(data)
    return b"".join(chunks)
