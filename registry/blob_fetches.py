"""Blob fetches from the pull-through cache's upstreams (registry/proxy.py): one per digest
across every process on the database, teed to the clients that arrive before its first byte.

The fetching process holds a claim on the digest in the database, kept alive by a heartbeat
(storage/fill_claims.py); within it, one task fetches and the process's clients join it
(registry/blob_fill.py). A process that finds another's live claim does not fetch: it waits for
the blob to land in the store, looking again every so often, and serves it from there; a claim
whose owner died expires, and the next miss takes it over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiohttp

from registry.blob_fill import BlobFill, BlobStream, teed
from registry.errors import ErrorCode, RegistryError
from registry.upstream_client import UpstreamClient, UpstreamError, UpstreamNotFound
from registry.upstream_errors import bad_upstream, pull_scope, unavailable, upstream_failure
from storage.blobstore import BlobUploads, DigestMismatch
from storage.digests import Digest
from storage.fill_claims import FillClaims

log = logging.getLogger("beakerd.proxy")

# How often a process waiting on another's fetch looks whether the blob has landed.
_ELSEWHERE_POLL_SECONDS = 0.25


class BlobFetches:
    def __init__(
        self,
        claims: FillClaims,
        uploads: BlobUploads,
        local_blob: Callable[[str, Digest], Awaitable[int | None]],
    ) -> None:
        self.claims = claims
        self.uploads = uploads
        # The blob's size when the store has it linked into the repository (or links it now).
        self._local_blob = local_blob
        self._fills: dict[str, BlobFill] = {}
        # Taken while a miss decides whether this process fetches: one claim at a time here.
        self._claiming = asyncio.Lock()

    async def blob(
        self, client: UpstreamClient, repository: str, path: str, digest: Digest, *, stream: bool
    ) -> BlobStream | None:
        """See PullThrough.blob: `path` is the repository's name at `client`'s upstream."""
        while True:
            if await self._local_blob(repository, digest) is not None:
                return None
            fill = self._fills.get(str(digest))
            if fill is None:
                fill = await self._claim_fill(client, repository, path, digest)
            if fill is None:
                await self._fetched_elsewhere(repository, digest)
                continue
            joined = fill.join() if stream else None
            if joined is not None:
                await self._headers_or_failure(fill)
                joined.size = fill.size
                return joined
            assert fill.task is not None
            # Wait for the stored copy; a fetch for another repository may not have linked it
            # here, so look again (and fetch for this one if need be).
            await asyncio.shield(fill.task)

    async def _headers_or_failure(self, fill: BlobFill) -> None:
        """Wait until the upstream answered (so the client's headers are known) or failed."""
        assert fill.task is not None
        headers = asyncio.ensure_future(fill.headers_known.wait())
        try:
            await asyncio.wait({headers, fill.task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            headers.cancel()
        if fill.task.done() and not fill.headers_known.is_set():
            fill.task.result()  # raises the fetch's RegistryError

    async def _claim_fill(
        self, client: UpstreamClient, repository: str, path: str, digest: Digest
    ) -> BlobFill | None:
        """This process's fetch of `digest`, started if the cluster-wide claim is ours; None
        while another process holds the claim, or once the blob landed meanwhile."""
        key = str(digest)
        async with self._claiming:
            fill = self._fills.get(key)
            if fill is not None:
                return fill
            if not await self.claims.claim(key):
                return None
            # Won just after another process stored the blob and let its claim go: no fetch.
            if await self._local_blob(repository, digest) is not None:
                await self.claims.release(key)
                return None
            return self._start_fill(client, repository, path, digest)

    async def _fetched_elsewhere(self, repository: str, digest: Digest) -> None:
        """Wait while another process holds the fetch of `digest`: until the blob is in the
        store here, or the claim is gone (the fetch failed, or its owner died and the claim
        expired: then this process may take it over)."""
        while await self.claims.held_elsewhere(str(digest)):
            if await self._local_blob(repository, digest) is not None:
                return
            await asyncio.sleep(_ELSEWHERE_POLL_SECONDS)

    def _start_fill(
        self, client: UpstreamClient, repository: str, path: str, digest: Digest
    ) -> BlobFill:
        fill = BlobFill()
        key = str(digest)
        self._fills[key] = fill
        fill.task = asyncio.create_task(self._claimed_fill(fill, client, repository, path, digest))

        def done(task: asyncio.Task[None]) -> None:
            self._fills.pop(key, None)
            if not task.cancelled():
                task.exception()  # retrieved here: waiters may all have gone

        fill.task.add_done_callback(done)
        return fill

    async def _claimed_fill(
        self, fill: BlobFill, client: UpstreamClient, repository: str, path: str, digest: Digest
    ) -> None:
        async with self.claims.held(str(digest)):
            await self._fill(fill, client, repository, path, digest)

    async def _fill(
        self, fill: BlobFill, client: UpstreamClient, repository: str, path: str, digest: Digest
    ) -> None:
        try:
            response = await client.request("GET", f"{path}/blobs/{digest}", pull_scope(path))
        except UpstreamNotFound:
            error = RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": str(digest)})
            fill.end(error)
            raise error from None
        except UpstreamError as e:
            error = upstream_failure(ErrorCode.BLOB_UNKNOWN, client, e)
            fill.end(error)
            raise error from None
        try:
            fill.size = response.content_length
            fill.headers_known.set()
            size = await self.uploads.ingest(repository, digest, teed(response, digest, fill))
            # The last chunk goes out once the blob is stored: a client that has the whole
            # body can count on the cache holding it.
            if fill.last is not None:
                await fill.feed(fill.last)
            fill.end(None)
        except DigestMismatch as e:
            error = bad_upstream(client, f"blob {digest}: {e}", ErrorCode.BLOB_UNKNOWN)
            fill.end(error)
            raise error from None
        except (aiohttp.ClientError, TimeoutError, UpstreamError) as e:
            log.warning("fetching blob %s from upstream %s failed: %s", digest, client.name, e)
            error = unavailable(ErrorCode.BLOB_UNKNOWN, client, e)
            fill.end(error)
            raise error from None
        except BaseException:
            fill.end(ConnectionResetError(f"fetching blob {digest} failed"))
            raise
        finally:
            response.release()
        log.info("cached blob %s (%d bytes) from upstream %s", digest, size, client.name)
