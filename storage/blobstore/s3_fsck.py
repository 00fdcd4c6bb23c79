"""`beakerd fsck` over an S3 store: the rows and the bucket's objects must agree.

The database-only checks (dangling references, orphan repositories) are storage/fsck.py's.
Here, with the same finding kinds:
- missing-file: a blob row without its object; a repair deletes the row when no manifest
  references the blob (as for files).
- corrupt: an object whose size is not its row's; a repair moves it to `lost+found/` (a
  server-side copy, then a delete) and treats the blob as missing. Content is not re-hashed:
  that would download the whole bucket (the scrub is the folder store's only).
- orphan-file: an object under `blobs/` without a row. A repair leaves it alone while younger
  than the grace period or named by an upload session (a publish in flight); else adopts it
  when a manifest references it and its bytes hash to its name (this does read it), and
  otherwise deletes it, re-checking in a transaction that no row or session appeared.
- orphan-file, too: an object a session completed at its own key (`blobs/by-upload/<id>`) that
  no row names. A repair deletes it once older than the grace period and its session is gone.
- stray-file: an object under `blobs/` not named like a blob: moved to `lost+found/`.
- expired-upload, upload-file-without-row: sessions idle past the expiry, and multipart uploads
  or staged objects that no session row names; a repair removes them as GC does.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

from storage.blobstore.keys import Keys
from storage.blobstore.s3_reclaim import S3Reclaimer
from storage.blobstore.s3client import ObjectInfo, S3Bucket
from storage.database import Database
from storage.digests import Digest, InvalidDigest
from storage.fsck import Fsck
from storage.orphans import RepositoryOwners

_PAGE = 1000


class S3Fsck(Fsck):
    def __init__(
        self,
        db: Database,
        root: Path,
        bucket: S3Bucket,
        keys: Keys,
        repair: bool = False,
        grace_seconds: float = 3600.0,
        upload_expiry_seconds: float = 86400.0,
        owners: RepositoryOwners | None = None,
    ) -> None:
        # `root` holds only the lock that keeps a repair apart from a collection.
        super().__init__(db, root, repair, grace_seconds, upload_expiry_seconds, owners)
        self.bucket = bucket
        self.keys = keys
        self.reclaimer = S3Reclaimer(db, bucket, keys)

    async def _check_trash(self) -> None:
        return  # an S3 store has no trash/: objects are deleted inside GC's transaction

    async def _check_rows(self) -> None:
        """Rows in digest order against the objects listed over the same span of keys."""
        last = ""
        while True:
            rows = await self.db.fetchall(
                "SELECT digest, size, object_key FROM blobs WHERE digest > ?"
                " ORDER BY digest LIMIT ?",
                (last, _PAGE),
            )
            if not rows:
                return
            last = str(rows[-1]["digest"])
            wanted: dict[str, tuple[str, int]] = {}
            for row in rows:
                text = str(row["digest"])
                if row["object_key"]:
                    # Not in the span of content addresses: looked up on its own.
                    stored = await self.bucket.head(str(row["object_key"]))
                    await self._check_object(text, int(row["size"]), stored)
                    continue
                try:
                    wanted[self.keys.blob(Digest.parse(text))] = (text, int(row["size"]))
                except InvalidDigest:
                    self.report.add("bad-row", text, "blob row with a malformed digest")
            if wanted:
                await self._check_span(wanted)

    async def _check_span(self, wanted: dict[str, tuple[str, int]]) -> None:
        first, end = min(wanted), max(wanted)
        found: dict[str, ObjectInfo] = {}
        async for item in self.bucket.list_objects(self.keys.blobs, after=first[:-1]):
            if item.key > end:
                break
            if item.key in wanted:
                found[item.key] = item
        for key, (text, size) in wanted.items():
            await self._check_object(text, size, found.get(key))

    async def _check_object(self, text: str, size: int, stored: ObjectInfo | None) -> None:
        if stored is None:
            await self._missing_file(text)
            return
        self.report.blobs_checked += 1
        if stored.size == size:
            return
        finding = self.report.add(
            "corrupt", text, f"object has {stored.size} bytes, the row says {size}"
        )
        if self.repair:
            finding.repair = f"moved to {await self._set_aside(stored, 'corrupt')}"
            await self._missing_file(text, report=False)

    async def _check_files(self) -> None:
        """Objects under blobs/ against rows, a page at a time."""
        page: list[ObjectInfo] = []
        async for item in self.bucket.list_objects(self.keys.blobs):
            self.report.files_seen += 1
            page.append(item)
            if len(page) >= _PAGE:
                await self._check_page(page)
                page = []
        await self._check_page(page)

    async def _check_page(self, page: list[ObjectInfo]) -> None:
        by_digest: dict[str, ObjectInfo] = {}
        by_upload: dict[str, ObjectInfo] = {}
        for item in page:
            digest = self.keys.digest_of(item.key)
            if self.keys.by_upload_id_of(item.key) is not None:
                by_upload[item.key] = item
            elif digest is None:
                finding = self.report.add("stray-file", item.key, "not named like a blob")
                if self.repair:
                    finding.repair = f"moved to {await self._set_aside(item, 'stray')}"
            else:
                by_digest[str(digest)] = item
        await self._check_by_upload(by_upload)
        if not by_digest:
            return
        marks = ",".join("?" * len(by_digest))
        rows = await self.db.fetchall(
            f"SELECT digest FROM blobs WHERE digest IN ({marks})", list(by_digest)
        )
        rowed = {str(row["digest"]) for row in rows}
        for text, item in by_digest.items():
            if text not in rowed:
                await self._orphan_object(Digest.parse(text), item)

    async def _check_by_upload(self, objects: dict[str, ObjectInfo]) -> None:
        """Objects sessions completed at their own keys: each a blob's, if a row names it."""
        if not objects:
            return
        marks = ",".join("?" * len(objects))
        rows = await self.db.fetchall(
            f"SELECT object_key FROM blobs WHERE object_key IN ({marks})", list(objects)
        )
        named = {str(row["object_key"]) for row in rows}
        for key, item in objects.items():
            if key in named:
                continue
            finding = self.report.add("orphan-file", key, "object no blob row names")
            if not self.repair:
                continue
            upload_id = self.keys.by_upload_id_of(key)
            session = await self.db.fetchone("SELECT 1 FROM uploads WHERE id = ?", (upload_id,))
            if session is not None or time.time() - item.modified < self.grace_seconds:
                finding.detail += "; may be a publish in flight, left alone"
                finding.repair = "skipped (in flight)"
                continue
            async with self.db.transaction() as conn:
                held = await conn.execute_fetchall(
                    "SELECT 1 FROM blobs WHERE object_key = ?", (key,)
                )
                if not list(held):
                    await self.bucket.delete([key])
            finding.repair = "kept (a row names it now)" if list(held) else "deleted"

    async def _orphan_object(self, digest: Digest, item: ObjectInfo) -> None:
        finding = self.report.add("orphan-file", str(digest), f"object without a row ({item.key})")
        if not self.repair:
            return
        publishing = await self.db.fetchone(
            "SELECT 1 FROM uploads WHERE digest = ?", (str(digest),)
        )
        if publishing is not None or time.time() - item.modified < self.grace_seconds:
            finding.detail += "; may be a publish in flight, left alone"
            finding.repair = "skipped (in flight)"
            return
        if await self._reference_count(str(digest)):
            actual = await self._hash(item.key, item.size, digest.algorithm)
            if actual != digest.hex:
                aside = await self._set_aside(item, "corrupt")
                finding.repair = f"content hashes to {actual}; moved to {aside}"
                return
            await self.db.execute(
                "INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (digest) DO NOTHING",
                (str(digest), item.size, time.time()),
            )
            finding.repair = "adopted (a manifest references it)"
            return
        async with self.db.transaction() as conn:
            held = await conn.execute_fetchall(
                "SELECT 1 FROM blobs WHERE digest = ? UNION ALL"
                " SELECT 1 FROM uploads WHERE digest = ?",
                (str(digest), str(digest)),
            )
            if not list(held):
                await self.bucket.delete([item.key])
        finding.repair = "kept (a push re-created its row)" if list(held) else "deleted"

    async def _hash(self, key: str, size: int, algorithm: str) -> str:
        hasher = hashlib.new(algorithm)
        async with self._hashing:
            async for data in self.bucket.read(key, 0, size):
                await asyncio.to_thread(hasher.update, data)
        return hasher.hexdigest()

    async def _set_aside(self, item: ObjectInfo, why: str) -> str:
        name = item.key.removeprefix(self.keys.blobs).replace("/", "-")
        aside = self.keys.lost_and_found(f"{name}.{why}.{int(time.time() * 1000)}")
        await self.bucket.copy(item.key, aside, item.size)
        await self.bucket.delete([item.key])
        return aside

    async def _check_uploads(self) -> None:
        expired = time.time() - self.upload_expiry_seconds
        rows = await self.db.fetchall(
            "SELECT id, digest, multipart_id, object_key FROM uploads WHERE updated_at < ?",
            (expired,),
        )
        for row in rows:
            finding = self.report.add(
                "expired-upload", str(row["id"]), "upload session idle past its expiry"
            )
            if self.repair:
                left = await self.reclaimer.end_session(
                    str(row["id"]), row["multipart_id"], row["digest"], expired, row["object_key"]
                )
                finding.repair = "session deleted" + (
                    ", and the blob object it left without a row" if left else ""
                )
        leftovers = await self.reclaimer.orphans(time.time() - self.grace_seconds, dry_run=True)
        count = leftovers.uploads + leftovers.orphan_files
        if not count:
            return
        finding = self.report.add(
            "upload-file-without-row",
            self.keys.uploads,
            f"{count} multipart uploads or staged objects without a session row",
        )
        if self.repair:
            await self.reclaimer.orphans(time.time() - self.grace_seconds, dry_run=False)
            finding.repair = "deleted (those older than the grace period)"
