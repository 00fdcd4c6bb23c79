"""The pull-through cache: `HOST/<upstream>/<path>` answered from the store, or fetched from
the upstream on a miss, stored and served.

- Manifests by digest are cached for good (content never changes). A tag is trusted for its
  upstream's `tag_ttl_seconds`, then re-checked with a HEAD; when the upstream cannot be reached
  the cached manifest is served all the same, with a `Warning` header and a log line.
- Only what clients ask for is fetched: an index is stored without its platforms' manifests,
  a manifest without its blobs, each fetched when a client asks for it.
- One fetch per object however many clients miss it at once. For a blob, across every process
  on the database (registry/blob_fetches.py: a claim in the database, kept alive by a
  heartbeat; other processes wait for the blob to land in the store; a dead owner's claim is
  taken over). A manifest (small) is fetched once per process (the store keeps one copy
  whatever the count). The fetch runs in a task of its own, so a client that goes away does
  not abort it for the others.
- A blob is written through the blob store's upload path (`BlobUploads.ingest`, on files or
  S3: hashed, verified against its digest, published, then its row), so it becomes visible only
  whole and correct. The client whose miss started the fetch, and any that arrive before the
  first byte, are served the upstream's bytes as they arrive (registry/blob_fill.py: the last
  chunk goes out only once verified and stored). A client arriving later waits
  for the fetch to complete and is then served from the store: replaying what it missed would
  mean reading the staged upload back, which the blob store does not offer (and S3 cannot
  before the upload completes).
- Cached repositories are read-only to clients: pushes and deletes are refused with 405
  UNSUPPORTED, as the reference registry does in proxy mode. Any authenticated account may pull
  through the cache (and anonymous callers when anonymous pulls are on): registry/auth.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp

from registry.blob_fetches import BlobFetches
from registry.blob_fill import BlobStream
from registry.errors import ErrorCode, RegistryError
from registry.manifests import MANIFEST_TYPES, MAX_MANIFEST_BYTES, parse_manifest
from registry.names import is_digest_like, is_tag, parse_digest
from registry.upstream_client import (
    UpstreamClient,
    UpstreamError,
    UpstreamNotFound,
    UpstreamUnavailable,
)
from registry.upstream_errors import bad_upstream, pull_scope, unavailable, upstream_failure
from registry.upstreams import Upstream, split_name
from storage.blobstore import BlobUploads
from storage.digests import Digest
from storage.fill_claims import FillClaims
from storage.pull_cache import PullCache
from storage.repositories import ManifestRecord, Repositories

log = logging.getLogger("beakerd.proxy")

# Every manifest type we store, so the upstream answers a tag with its index where it has one.
_ACCEPT = ", ".join(sorted(MANIFEST_TYPES))
# A cache entry's last-use time is written at most this often: pulls must not all be writes.
_TOUCH_EVERY_SECONDS = 600.0
STALE_WARNING = '110 beakerd "Response is Stale"'


@dataclass(frozen=True, slots=True)
class CachedManifest:
    record: ManifestRecord
    # Served from the cache because the upstream could not be asked whether the tag moved.
    stale: bool = False


class PullThrough:
    def __init__(
        self,
        upstreams: Sequence[Upstream],
        session: aiohttp.ClientSession,
        cache: PullCache,
        claims: FillClaims,
        repositories: Repositories,
        uploads: BlobUploads,
        manifest_of: Callable[[str, str], Awaitable[ManifestRecord | None]],
    ) -> None:
        self.upstreams = list(upstreams)
        self.clients = {u.name: UpstreamClient(u, session) for u in upstreams}
        self.cache = cache
        self.claims = claims
        self.repositories = repositories
        self.uploads = uploads
        self.manifest_of = manifest_of
        self._flights: dict[tuple[str, ...], asyncio.Task[CachedManifest | None]] = {}
        self.fetches = BlobFetches(claims, uploads, self._local_blob)
        self._touched: dict[tuple[str, str], float] = {}

    def covers(self, repository: str) -> bool:
        """Whether `repository` lies under an upstream's name (and so is read-only)."""
        head = repository.split("/", 1)[0]
        return any(u.name == head for u in self.upstreams)

    def _target(self, repository: str) -> tuple[UpstreamClient, str]:
        found = split_name(self.upstreams, repository)
        if found is None:
            raise RegistryError(
                ErrorCode.NAME_UNKNOWN,
                "a pull-through cache name needs a path after the upstream's name",
                detail={"name": repository[:256]},
            )
        upstream, path = found
        return self.clients[upstream.name], path

    # -- manifests --------------------------------------------------------------------------

    async def manifest(self, repository: str, reference: str) -> CachedManifest | None:
        client, path = self._target(repository)
        if is_digest_like(reference):
            digest = str(parse_digest(reference))
            record = await self.manifest_of(repository, digest)
            if record is not None:
                await self._touch(repository, digest)
                return CachedManifest(record)
            return await self._once(
                ("manifest", repository, digest),
                lambda: self._fetch_manifest(client, repository, path, digest, None),
            )
        if not is_tag(reference):
            return None
        entry = await self.cache.entry(repository, reference)
        if entry is not None and time.time() - entry.checked_at < client.upstream.tag_ttl_seconds:
            record = await self.manifest_of(repository, entry.digest)
            if record is not None:
                await self._touch(repository, reference, entry.digest)
                return CachedManifest(record)
        return await self._once(
            ("tag", repository, reference),
            lambda: self._refresh_tag(client, repository, path, reference),
        )

    async def _refresh_tag(
        self, client: UpstreamClient, repository: str, path: str, tag: str
    ) -> CachedManifest | None:
        entry = await self.cache.entry(repository, tag)
        record = await self.manifest_of(repository, entry.digest) if entry else None
        try:
            if record is not None:
                response = await client.request(
                    "HEAD", f"{path}/manifests/{tag}", pull_scope(path), {"Accept": _ACCEPT}
                )
                upstream_digest = response.headers.get("Docker-Content-Digest")
                response.release()
                if upstream_digest == record.digest:
                    await self.cache.confirm(repository, tag, record.digest)
                    return CachedManifest(record)
            return await self._fetch_manifest(client, repository, path, tag, tag)
        except UpstreamUnavailable as e:
            if record is None:
                raise unavailable(ErrorCode.MANIFEST_UNKNOWN, client, e) from None
            log.warning(
                "serving %s:%s from the cache, possibly stale: upstream %s is unavailable (%s)",
                repository, tag, client.name, e,
            )  # fmt: skip
            return CachedManifest(record, stale=True)

    async def _fetch_manifest(
        self, client: UpstreamClient, repository: str, path: str, reference: str, tag: str | None
    ) -> CachedManifest | None:
        try:
            response = await client.request(
                "GET", f"{path}/manifests/{reference}", pull_scope(path), {"Accept": _ACCEPT}
            )
            try:
                body = await response.content.read(MAX_MANIFEST_BYTES + 1)
                content_type = response.headers.get("Content-Type")
            finally:
                response.release()
        except UpstreamNotFound:
            return None
        except UpstreamError as e:
            raise upstream_failure(ErrorCode.MANIFEST_UNKNOWN, client, e) from None
        except (aiohttp.ClientError, TimeoutError) as e:
            raise unavailable(ErrorCode.MANIFEST_UNKNOWN, client, e) from None
        if len(body) > MAX_MANIFEST_BYTES:
            raise bad_upstream(client, f"manifest {reference} is over {MAX_MANIFEST_BYTES} bytes")
        try:
            parsed = parse_manifest(body, content_type)
        except RegistryError as e:
            raise bad_upstream(client, f"manifest {reference} is invalid: {e.message}") from None
        expected = parse_digest(reference) if tag is None else None
        digest = Digest.of(body, expected.algorithm if expected else "sha256")
        if expected is not None and digest != expected:
            raise bad_upstream(client, f"manifest {reference} hashes to {digest}")
        await self.cache.store_manifest(
            repository,
            parsed.stored(digest, body),
            tag,
        )
        log.info("cached %s@%s from upstream %s", repository, digest, client.name)
        return CachedManifest(ManifestRecord(str(digest), parsed.media_type, len(body), body))

    # -- blobs ------------------------------------------------------------------------------

    async def blob_size(self, repository: str, digest: Digest) -> int | None:
        """For HEAD: the size of a blob the cache has or the upstream says it has (no fetch)."""
        client, path = self._target(repository)
        size = await self._local_blob(repository, digest)
        if size is not None:
            return size
        try:
            response = await client.request("HEAD", f"{path}/blobs/{digest}", pull_scope(path))
        except UpstreamNotFound:
            return None
        except UpstreamError as e:
            raise upstream_failure(ErrorCode.BLOB_UNKNOWN, client, e) from None
        response.release()
        return response.content_length

    async def blob(self, repository: str, digest: Digest, *, stream: bool) -> BlobStream | None:
        """Make the blob available in `repository`: None once it is in the store (linked there),
        else, when `stream` is set and the fetch has sent nothing yet, its bytes as they come.

        Raises RegistryError BLOB_UNKNOWN when the upstream does not have it.
        """
        client, path = self._target(repository)
        return await self.fetches.blob(client, repository, path, digest, stream=stream)

    async def _local_blob(self, repository: str, digest: Digest) -> int | None:
        size = await self.repositories.linked_blob_size(repository, str(digest))
        if size is None:
            size = await self.cache.link_referenced_blob(repository, str(digest))
        return size

    # -- shared -----------------------------------------------------------------------------

    async def _once(
        self, key: tuple[str, ...], fetch: Callable[[], Awaitable[CachedManifest | None]]
    ) -> CachedManifest | None:
        """Run `fetch` once for every caller that asks for `key` while it runs."""
        task = self._flights.get(key)
        if task is None:
            task = asyncio.ensure_future(fetch())
            self._flights[key] = task

            def done(finished: asyncio.Task[CachedManifest | None]) -> None:
                self._flights.pop(key, None)
                if not finished.cancelled():
                    finished.exception()

            task.add_done_callback(done)
        return await asyncio.shield(task)

    async def _touch(self, repository: str, *references: str) -> None:
        key = (repository, references[0])
        now = time.monotonic()
        last = self._touched.get(key)
        if last is not None and now - last < _TOUCH_EVERY_SECONDS:
            return
        if len(self._touched) > 65536:
            self._touched.clear()
        self._touched[key] = now
        await self.cache.touch(repository, *references)

    async def expire(self, unused_seconds: float) -> int:
        """Age out the entries no client pulled for `unused_seconds`; how many went."""
        removed = await self.cache.expire(time.time() - unused_seconds)
        if removed:
            log.info(
                "pull-through cache: %d entries unused for %gs aged out", removed, unused_seconds
            )
        return removed


def refuse_write(pull_through: PullThrough | None, repository: str) -> None:
    """405 UNSUPPORTED for a push or delete into the pull-through cache."""
    if pull_through is not None and pull_through.covers(repository):
        raise RegistryError(
            ErrorCode.UNSUPPORTED,
            f"{repository} is in the pull-through cache, which is read-only",
            detail={"name": repository[:256]},
        )
