"""Pulls from an S3 store: a presigned GET for the client to follow (a 307 redirect), or the
object streamed through this process (relayed socket to socket when the store speaks plain
http, registry/relay.py; else read in chunks). Either way the client's `Range` is honoured: a
presigned URL leaves the Range header unsigned, so S3 itself answers 206.

Nothing here asks S3 whether a blob exists before a pull: the database row is the index (HEAD
answers from it, and names the object when it is not at the blob's content address), a
redirect to a missing object gets S3's 404, and a stream learns it from its first request.
fsck reports rows without objects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from storage.blobstore import BlobMissing
from storage.blobstore.keys import Keys
from storage.blobstore.s3client import ObjectMissing, S3Bucket
from storage.database import Database
from storage.digests import Digest

# As distribution's S3 driver: long enough for a slow client to start, short enough to leak
# little if a URL is logged.
PRESIGN_SECONDS = 20 * 60
# A URL this process fetches at once, and never shows anyone.
RELAY_SECONDS = 60


class S3Blobs:
    def __init__(self, db: Database, bucket: S3Bucket, keys: Keys, redirect: bool) -> None:
        self.db = db
        self.bucket = bucket
        self.keys = keys
        self.redirect = redirect

    async def ping(self) -> None:
        await self.bucket.ping()

    async def present(self, digest: Digest) -> bool:
        return True

    def local_path(self, digest: Digest) -> Path | None:
        return None

    async def redirect_url(self, digest: Digest) -> str | None:
        if not self.redirect:
            return None
        return await self.bucket.presign_get(await self._key(digest), PRESIGN_SECONDS)

    async def relay_url(self, digest: Digest) -> str | None:
        if not self.bucket.plain_http:
            return None  # TLS: the bytes would have to be decrypted here anyway
        return await self.bucket.presign_get(await self._key(digest), RELAY_SECONDS)

    async def read(self, digest: Digest, start: int, length: int) -> AsyncIterator[bytes]:
        try:
            async for data in self.bucket.read(await self._key(digest), start, length):
                yield data
        except ObjectMissing:
            raise BlobMissing(str(digest)) from None

    async def _key(self, digest: Digest) -> str:
        """The blob's object: the one its row names, else its content address."""
        row = await self.db.fetchone(
            "SELECT object_key FROM blobs WHERE digest = ?", (str(digest),)
        )
        named = row["object_key"] if row is not None else None
        return str(named) if named else self.keys.blob(digest)

    async def quarantine(self, digest: Digest, read: tuple[int, int]) -> Path | None:
        return None  # no local files are served, so none is ever found corrupt on the way
