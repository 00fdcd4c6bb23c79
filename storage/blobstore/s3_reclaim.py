"""The S3 store's share of garbage collection: deleting blob objects, and the multipart uploads
and staged objects of expired sessions.

Deleting a blob races a push of the same digest, which puts the object in place and then
commits the row. There is no rename to trash into, so the race is settled in the database: the
objects are deleted inside GC's deleting transaction, after the rows are checked again there,
and sparing every digest an upload session names (a session records its digest, in a committed
transaction, before it writes the blob's object). A push that records its digest after that
transaction finds the object gone and writes it again; one that recorded it before is seen. An
object whose delete fails keeps its row. A kill between the object's delete and the commit
leaves the row of an old, unreferenced blob without its object: the next pass deletes it (an S3
delete of a missing key succeeds), fsck reports it meanwhile.

Expired sessions: their multipart upload is aborted and their staged objects deleted before the
row goes; a blob object the session put in place without committing its row goes too, unless a
row or another session holds that digest, and so does the object it completed at its own key
(`blobs/by-upload/<id>`) unless a blob row names it. A blob row naming such an object is
deleted with its object, like any other. Multipart uploads and objects under `uploads/` that no
row names (a kill inside a request) are removed once older than the expiry.
"""

from __future__ import annotations

import contextlib

from storage.blobstore import DeleteRows, Expired, Removed
from storage.blobstore.keys import Keys
from storage.blobstore.s3client import S3Bucket
from storage.database import Connection, Database
from storage.digests import Digest, InvalidDigest


class S3Reclaimer:
    def __init__(self, db: Database, bucket: S3Bucket, keys: Keys) -> None:
        self.db = db
        self.bucket = bucket
        self.keys = keys

    async def has_leftovers(self) -> bool:
        return False  # nothing is ever parked half-removed

    async def recover(self) -> int:
        return 0

    async def remove(self, sizes: dict[Digest, int], delete_rows: DeleteRows) -> Removed:
        async def inside(conn: Connection, dead: list[str]) -> set[str]:
            if not dead:
                return set()
            marks = ",".join("?" * len(dead))
            publishing = {
                str(row[0])
                for row in await conn.execute_fetchall(
                    f"SELECT digest FROM uploads WHERE digest IN ({marks})", dead
                )
            }
            named = {
                str(row[0]): str(row[1])
                for row in await conn.execute_fetchall(
                    f"SELECT digest, object_key FROM blobs WHERE digest IN ({marks})"
                    " AND object_key IS NOT NULL",
                    dead,
                )
            }
            keys = {
                named.get(d) or self.keys.blob(Digest.parse(d)): d
                for d in dead
                if d not in publishing
            }
            return {keys[key] for key in await self.bucket.delete(list(keys))}

        gone = await delete_rows(inside)
        freed = sum(size for digest, size in sizes.items() if str(digest) in gone)
        return Removed(len(gone), freed, frozenset(gone))

    async def expire_uploads(self, expired: float, dry_run: bool) -> Expired:
        result = Expired()
        rows = await self.db.fetchall(
            'SELECT id, digest, multipart_id, "offset", object_key FROM uploads'
            " WHERE updated_at < ?",
            (expired,),
        )
        for row in rows:
            result.uploads += 1
            result.bytes += int(row["offset"])
            if not dry_run:
                result.orphan_files += await self.end_session(
                    str(row["id"]), row["multipart_id"], row["digest"], expired, row["object_key"]
                )
        orphans = await self.orphans(expired, dry_run)
        result.uploads += orphans.uploads
        result.bytes += orphans.bytes
        return result

    async def end_session(
        self,
        upload_id: str,
        multipart_id: str | None,
        digest: str | None,
        idle_since: float,
        object_key: str | None,
    ) -> int:
        """Remove an idle session, its staged data first; 1 if it left a blob object behind.

        `object_key` is where the session made its multipart upload (None: under uploads/):
        completed there, it is a blob's object once a row names it, else the session's leftover.
        """
        if multipart_id:
            await self.bucket.abort(object_key or self.keys.upload_data(upload_id), multipart_id)
        staged = [o.key async for o in self.bucket.list_objects(self.keys.upload_folder(upload_id))]
        if staged:
            await self.bucket.delete(staged)
        left = 0
        async with self.db.transaction() as conn:
            if object_key:
                left += await self._unnamed_object(conn, object_key)
            if digest:
                with contextlib.suppress(InvalidDigest):
                    left += await self._unrowed_object(conn, upload_id, Digest.parse(digest))
            await conn.execute(
                "DELETE FROM uploads WHERE id = ? AND updated_at < ?", (upload_id, idle_since)
            )
        return left

    async def _unrowed_object(self, conn: Connection, upload_id: str, digest: Digest) -> int:
        """Delete the blob object a dead session put in place before its row, if none holds it."""
        held = await conn.execute_fetchall(
            "SELECT 1 FROM blobs WHERE digest = ?"
            " UNION ALL SELECT 1 FROM uploads WHERE digest = ? AND id <> ?",
            (str(digest), str(digest), upload_id),
        )
        key = self.keys.blob(digest)
        if list(held) or await self.bucket.head(key) is None:
            return 0
        await self.bucket.delete([key])
        return 1

    async def _unnamed_object(self, conn: Connection, key: str) -> int:
        """Delete a session's completed object if no blob row names it."""
        named = await conn.execute_fetchall("SELECT 1 FROM blobs WHERE object_key = ?", (key,))
        if list(named) or await self.bucket.head(key) is None:
            return 0
        await self.bucket.delete([key])
        return 1

    async def orphans(self, older_than: float, dry_run: bool) -> Expired:
        """Multipart uploads and staged objects no session row names, older than `older_than`."""
        result = Expired()
        rows = await self.db.fetchall("SELECT id, multipart_id FROM uploads")
        sessions = {str(row["id"]) for row in rows}
        multiparts = {str(row["multipart_id"]) for row in rows if row["multipart_id"]}
        async for upload in self.bucket.list_multipart(self.keys.prefix):
            if upload.upload_id in multiparts or upload.initiated >= older_than:
                continue
            result.uploads += 1
            if not dry_run:
                await self.bucket.abort(upload.key, upload.upload_id)
        stale = []
        async for item in self.bucket.list_objects(self.keys.uploads):
            if self.keys.upload_id_of(item.key) in sessions or item.modified >= older_than:
                continue
            result.orphan_files += 1
            result.bytes += item.size
            stale.append(item.key)
        if stale and not dry_run:
            await self.bucket.delete(stale)
        return result
