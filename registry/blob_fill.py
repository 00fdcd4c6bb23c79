"""One upstream fetch of a blob, teed to the clients streaming it (registry/proxy.py).

The store gets every chunk as it arrives; the streaming clients get each one a chunk behind,
and the last only once the whole body hashes to the digest and the store holds it, so no
client ever holds a complete wrong body, and one that holds the whole body can count on the
cache having it. A client too far behind is cut off rather than buffered without bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp

from storage.digests import Digest

_CHUNK = 1 << 20
# A streaming client this far behind the upstream is cut off (it retries and is served from
# the store): a stalled client must neither hold unbounded memory nor slow the fetch.
_MAX_BEHIND_BYTES = 64 << 20


class _Behind(Exception):
    """This streaming client fell too far behind the upstream."""


class BlobStream:
    """The first clients' view of a blob fetch: chunks as they arrive from the upstream."""

    def __init__(self, size: int | None) -> None:
        self.size = size
        self._queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        self._buffered = 0
        self._dropped = False

    def _feed(self, item: bytes | BaseException | None) -> None:
        if self._dropped:
            return
        if isinstance(item, bytes):
            if self._buffered + len(item) > _MAX_BEHIND_BYTES:
                self._dropped = True
                item = _Behind("client fell behind the upstream fetch")
            else:
                self._buffered += len(item)
        self._queue.put_nowait(item)

    def close(self) -> None:
        """The client is done (or gone): stop buffering for it."""
        self._dropped = True
        while not self._queue.empty():
            self._queue.get_nowait()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body; raises when the fetch fails or the bytes do not match the digest."""
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            self._buffered -= len(item)
            yield item


class BlobFill:
    """One upstream fetch of a blob into the store, teed to the clients streaming it."""

    def __init__(self) -> None:
        self.streams: list[BlobStream] = []
        self.size: int | None = None
        self.sent_any = False  # once a byte went out, newcomers wait for the stored copy
        self.headers_known = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        # The verified last chunk, held back from the streaming clients until it is stored.
        self.last: bytes | None = None

    def join(self) -> BlobStream | None:
        if self.sent_any:
            return None
        stream = BlobStream(self.size)
        self.streams.append(stream)
        return stream

    def feed(self, item: bytes | BaseException | None) -> None:
        if isinstance(item, bytes):
            self.sent_any = True
        for stream in self.streams:
            stream._feed(item)


async def teed(
    response: aiohttp.ClientResponse, digest: Digest, fill: BlobFill
) -> AsyncIterator[bytes]:
    """The upstream's body for the store, copied to the streaming clients one chunk behind:
    the last is kept in `fill.last`, and only once the whole body hashes to `digest`."""
    hasher = digest.hasher()
    held: bytes | None = None
    async for data in response.content.iter_chunked(_CHUNK):
        hasher.update(data)
        if held is not None:
            fill.feed(held)
        held = data
        yield data
    if hasher.hexdigest() != digest.hex:
        # ingest() sees the mismatch too and discards the upload.
        fill.feed(ConnectionResetError(f"upstream bytes do not match {digest}"))
        return
    fill.last = held
