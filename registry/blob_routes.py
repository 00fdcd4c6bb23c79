"""`/v2/<name>/blobs/<digest>`: HEAD, GET (with Range) and DELETE.

A blob is served only while its file is in the store: one taken out as corrupt (storage/scrub.py)
answers BLOB_UNKNOWN to HEAD and GET, so clients push it again, which heals it. Where the bytes
pass through Python anyway (the threaded stream under TLS), a whole-body GET is hashed on the
way: on a mismatch the connection is cut before the last chunk, so no client ever holds a
complete wrong body under the digest, and the file is taken out.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import BinaryIO

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from registry.access import DELETE, PULL, require
from registry.blob_fill import BlobStream
from registry.context import REGISTRY
from registry.errors import ErrorCode, RegistryError
from registry.names import check_name, parse_digest
from registry.relay import NotRelayable, relay, relayable
from registry.visibility import visible_blob_size
from storage.blobs import identity_of
from storage.blobstore import BlobMissing, BlobReader
from storage.digests import Digest

log = logging.getLogger("beakerd.registry")

# Blobs never change, so clients and proxies may keep them for as long as they like.
_IMMUTABLE_CACHE = "public, max-age=31536000, immutable"
# Under TLS there is no sendfile: the file is read in a thread, one chunk ahead of the socket.
STREAM_CHUNK = 1 << 20


def _blob_unknown(digest: str) -> RegistryError:
    return RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": digest})


async def get_blob(request: web.Request) -> web.StreamResponse:
    ctx = request.app[REGISTRY]
    name = check_name(request.match_info["name"])
    digest = parse_digest(request.match_info["digest"])
    await require(request, name, PULL)
    headers = {
        "Docker-Content-Digest": str(digest),
        "Cache-Control": _IMMUTABLE_CACHE,
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
    }
    proxy = ctx.proxied(name)
    if proxy is not None:
        if request.method == "HEAD":
            size = await proxy.blob_size(name, digest)
            if size is None:
                raise _blob_unknown(str(digest))
            headers["Content-Length"] = str(size)
            return web.Response(headers=headers)
        # A whole-body GET may be served while the blob streams in from the upstream.
        stream = await proxy.blob(name, digest, stream="Range" not in request.headers)
        if stream is not None:
            return await _stream_in(request, stream, headers)
    if request.method == "HEAD":
        size = await visible_blob_size(request, ctx, name, str(digest))
    else:
        size = await ctx.repositories.linked_blob_size(name, str(digest))
    if size is None:
        raise _blob_unknown(str(digest))
    if not await ctx.blobs.present(digest):
        # A row without its file (taken out as corrupt, or lost): the client hears the blob is
        # gone, and pushes it again.
        raise _blob_unknown(str(digest))
    if request.method == "HEAD":
        headers["Content-Length"] = str(size)
        return web.Response(headers=headers)
    path = ctx.blobs.local_path(digest)
    if path is None:
        url = await ctx.blobs.redirect_url(digest)
        if url is not None:
            # The client fetches the bytes from the store itself, with its Range if any.
            return web.Response(status=307, headers={**headers, "Location": url})
        return await _streamed(request, ctx.blobs, digest, size, headers)
    if request.transport is not None and request.transport.get_extra_info("sslcontext"):
        # aiohttp's FileResponse falls back to small, unpipelined writes under TLS.
        response = ThreadedFileResponse(path, headers)
        response.verify(VerifiedBlob(ctx.blobs, digest))
        return response
    return web.FileResponse(path, headers=headers)


async def _streamed(
    request: web.Request, blobs: BlobReader, digest: Digest, size: int, headers: dict[str, str]
) -> web.StreamResponse:
    """The blob read from the store and passed on: relayed socket to socket where it can be,
    else in chunks."""
    try:
        wanted = byte_range(request, size)
    except ValueError:
        return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    start, count = wanted if wanted is not None else (0, size)

    def answer() -> web.StreamResponse:
        response = web.StreamResponse(status=206 if wanted is not None else 200, headers=headers)
        if wanted is not None:
            response.headers["Content-Range"] = f"bytes {start}-{start + count - 1}/{size}"
        response.content_length = count
        return response

    url = await blobs.relay_url(digest) if count and relayable(request) else None
    if url is not None:
        response = answer()
        try:
            await relay(request, response, url, start, count)
            return response
        except BlobMissing:
            raise _blob_unknown(str(digest)) from None
        except NotRelayable as e:
            log.info("blob %s streamed in chunks, not relayed: %s", digest, e)
    chunks = aiter(blobs.read(digest, start, count))
    try:
        first = await anext(chunks, b"")
    except BlobMissing:
        raise _blob_unknown(str(digest)) from None
    response = answer()
    await response.prepare(request)
    sent = len(first)
    if first:
        await response.write(first)
    async for data in chunks:
        sent += len(data)
        await response.write(data)
    if sent != count:
        # The object is shorter than its row: cut the connection rather than end the body.
        raise ConnectionResetError(f"blob {digest} ended after {sent} of {count} bytes")
    await response.write_eof()
    return response


async def _stream_in(
    request: web.Request, stream: BlobStream, headers: dict[str, str]
) -> web.StreamResponse:
    """A blob's bytes as the pull-through cache receives them from its upstream.

    When the fetch fails, or the bytes do not hash to the digest, the connection is cut before
    the body is complete (proxy.py holds the last chunk back until it is verified).
    """
    response = web.StreamResponse(headers=headers)
    if stream.size is not None:
        response.content_length = stream.size
    try:
        await response.prepare(request)
        try:
            async for chunk in stream.chunks():
                await response.write(chunk)
        except Exception as e:
            log.warning("streaming %s to a client stopped: %s", request.path, e)
            if request.transport is not None:
                request.transport.abort()  # as _cut_short: never wait for a TLS close_notify
            raise ConnectionResetError(str(e)) from None
        await response.write_eof()
    finally:
        stream.close()
    return response


def byte_range(request: web.BaseRequest, size: int) -> tuple[int, int] | None:
    """(start, count) of a satisfiable Range, None without one; raises ValueError if unsatisfiable.

    Exactly aiohttp's FileResponse rules, so both ways of serving a blob answer alike.
    """
    rng = request.http_range  # ValueError for a malformed or multi-part range
    start, end = rng.start, rng.stop
    if start is None:
        return None
    if start < 0 and end is None:  # a suffix: the last -start bytes
        start = max(start + size, 0)
        count = size - start
    else:
        count = min(end if end is not None else size, size) - start
    if start >= size:
        raise ValueError("range starts past the end")
    return start, count


class VerifiedBlob:
    """The digest a whole-body stream must hash to, and the store to take the file out of."""

    def __init__(self, store: BlobReader, digest: Digest) -> None:
        self.store = store
        self.digest = digest
        self.hasher = digest.hasher()

    def read(self, f: BinaryIO, size: int) -> bytes:
        """Read and hash (in the reading thread: hashing is CPU work)."""
        data = f.read(size)
        self.hasher.update(data)
        return data

    def matches(self) -> bool:
        return self.hasher.hexdigest() == self.digest.hex

    async def take_out(self, f: BinaryIO) -> None:
        actual = self.hasher.hexdigest()
        aside = await self.store.quarantine(self.digest, identity_of(f.fileno()))
        log.error(
            "blob %s is corrupt (its bytes hash to %s:%s): stream cut short, file moved to %s",
            self.digest, self.digest.algorithm, actual, aside,
        )  # fmt: skip


class ThreadedFileResponse(web.StreamResponse):
    """A file read in 1 MiB chunks by a thread, one chunk ahead of the socket.

    Like FileResponse it is prepared by aiohttp after the middlewares have added their
    headers, and it answers Range with 206/416 by the same rules.
    """

    def __init__(self, path: Path, headers: dict[str, str]) -> None:
        super().__init__(headers=headers)
        self._path = path
        self._verify: VerifiedBlob | None = None

    def verify(self, blob: VerifiedBlob) -> None:
        """Check a whole body against `blob` before its last chunk is written."""
        self._verify = blob

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await super().prepare(request)
        f = await asyncio.to_thread(self._path.open, "rb")
        try:
            return await self._send(request, f)
        finally:
            await asyncio.to_thread(f.close)

    async def _send(self, request: web.BaseRequest, f: BinaryIO) -> AbstractStreamWriter | None:
        size = (await asyncio.to_thread(os.fstat, f.fileno())).st_size
        try:
            wanted = byte_range(request, size)
        except ValueError:
            self.set_status(416)
            self.headers["Content-Range"] = f"bytes */{size}"
            return await super().prepare(request)
        start, count = wanted if wanted is not None else (0, size)
        if wanted is not None:
            self.set_status(206)
            self.headers["Content-Range"] = f"bytes {start}-{start + count - 1}/{size}"
        verify = self._verify if wanted is None else None
        if verify is not None and count == 0 and not verify.matches():
            await self._cut_short(request, f, verify)  # an empty file under a digest of bytes
        self.content_length = count
        writer = await super().prepare(request)
        if count <= 0 or request.method == "HEAD":
            return writer
        await asyncio.to_thread(f.seek, start)
        loop = asyncio.get_running_loop()
        remaining = count
        read = verify.read if verify is not None else _plain_read
        ahead = loop.run_in_executor(None, read, f, min(STREAM_CHUNK, remaining))
        try:
            while remaining > 0:
                chunk = await ahead
                if not chunk:
                    break  # the file shrank under us: the client sees a short body
                remaining -= len(chunk)
                if remaining > 0:
                    ahead = loop.run_in_executor(None, read, f, min(STREAM_CHUNK, remaining))
                elif verify is not None and not verify.matches():
                    await self._cut_short(request, f, verify)
                await self.write(chunk)
        finally:
            if not ahead.done():
                await asyncio.gather(ahead, return_exceptions=True)
        await self.write_eof()
        return writer

    async def _cut_short(self, request: web.BaseRequest, f: BinaryIO, blob: VerifiedBlob) -> None:
        """Take the corrupt file out and drop the connection before the body is complete."""
        await blob.take_out(f)
        if request.transport is not None:
            # abort, not close: a TLS close waits for the client's close_notify, which a client
            # still reading may never send, and holds the connection (and shutdown) meanwhile.
            request.transport.abort()
        # aiohttp treats this as a client gone away: no error response, the connection closes.
        raise ConnectionResetError("blob content does not match its digest")


def _plain_read(f: BinaryIO, size: int) -> bytes:
    return f.read(size)


async def delete_blob(request: web.Request) -> web.Response:
    ctx = request.app[REGISTRY]
    name = check_name(request.match_info["name"])
    digest = parse_digest(request.match_info["digest"])
    await require(request, name, DELETE)
    await ctx.ensure_writable(name)
    if not await ctx.repositories.unlink_blob(name, str(digest)):
        raise _blob_unknown(str(digest))
    return web.Response(status=202, headers={"Docker-Content-Digest": str(digest)})
