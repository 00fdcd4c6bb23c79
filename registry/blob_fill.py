"""One upstream fetch of a blob, teed to the clients streaming it (registry/proxy.py).

The store gets every chunk as it arrives; the streaming clients get each one a chunk behind,
and the last only once the whole body hashes to the digest and the store holds it, so no
client ever holds a complete wrong body, and one that holds the whole body can count on the
cache having it. The fetch keeps pace with its slowest streaming client (bounded memory); one
that stops reading altogether is cut off rather than allowed to hold up the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp

from storage.digests import Digest

_CHUNK = 1 << 20
# How far a streaming client may lag the upstream before the fetch waits for it: the fetch
# goes at the pace of its slowest streaming client, in bounded memory, as a plain proxy would.
_MAX_BEHIND_BYTES = 16 << 20
# A streaming client that takes nothing for this long is cut off (it retries and is served from
# the store), so a stalled client cannot hold up the fetch for everyone else; shorter than
# the upstream read timeout (beakerd/app.py), which the paused fetch must not run into.
STALLED_CLIENT_SECONDS = 30.0


class _Stalled(Exception):
    """This streaming client stopped reading."""


class BlobStream:
    """The first clients' view of a blob fetch: chunks as they arrive from the upstream."""

    def __init__(self, size: int | None) -> None:
        self.size = size
        self._queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        self._buffered = 0
        self._drained = asyncio.Event()
        self._dropped = False

    async def _feed(self, data: bytes) -> None:
        """Queue a chunk, first waiting (a while) for the client to take what it has."""
        if self._dropped:
            return
        if self._buffered + len(data) > _MAX_BEHIND_BYTES:
            self._drained.clear()
            try:
                async with asyncio.timeout(STALLED_CLIENT_SECONDS):
                    while not self._dropped and self._buffered + len(data) > _MAX_BEHIND_BYTES:
                        await self._drained.wait()
                        self._drained.clear()
            except TimeoutError:
                self._end(_Stalled(f"client took nothing for {STALLED_CLIENT_SECONDS:g} s"))
                return
            if self._dropped:
                return
        self._buffered += len(data)
        self._queue.put_nowait(data)

    def _end(self, item: BaseException | None) -> None:
        if self._dropped:
            return
        if isinstance(item, BaseException):
            self._dropped = True
        self._queue.put_nowait(item)

    def close(self) -> None:
        """The client is done (or gone): stop buffering for it, and never wait for it."""
        self._dropped = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._drained.set()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body; raises when the fetch fails or the bytes do not match the digest."""
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            self._buffered -= len(item)
            self._drained.set()
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

    async def feed(self, data: bytes) -> None:
        self.sent_any = True
        if len(self.streams) == 1:
            await self.streams[0]._feed(data)
        elif self.streams:
            await asyncio.gather(*(stream._feed(data) for stream in self.streams))

    def end(self, item: BaseException | None) -> None:
        """The body is complete (None) or failed: tell every streaming client."""
        for stream in self.streams:
            stream._end(item)


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
            await fill.feed(held)
        held = data
        yield data
    if hasher.hexdigest() != digest.hex:
        # ingest() sees the mismatch too and discards the upload.
        fill.end(ConnectionResetError(f"upstream bytes do not match {digest}"))
        return
    fill.last = held
