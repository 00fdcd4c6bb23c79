"""The folder backend's share of garbage collection: blob files leave by way of `trash/`
(storage/trash.py), and expired sessions' files under `uploads/` go before their rows.

The folder backend's reading and uploading live in storage/blobs.py and storage/uploads.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from storage.blobstore import DeleteRows, Expired, Removed
from storage.database import Connection, Database
from storage.digests import Digest, InvalidDigest
from storage.trash import BlobFiles, list_files, unlink_counting
from storage.uploads import companion_files


async def _as_is(conn: Connection, dead: list[str]) -> set[str]:
    return set(dead)  # the files are in trash/ already


class FileReclaimer:
    def __init__(self, db: Database, files: BlobFiles, uploads_root: Path) -> None:
        self.db = db
        self.files = files
        self.uploads_root = uploads_root

    async def has_leftovers(self) -> bool:
        return await self.files.anything_in_trash()

    async def recover(self) -> int:
        return await self.files.recover()

    async def remove(self, sizes: dict[Digest, int], delete_rows: DeleteRows) -> Removed:
        """Files into trash/, then the rows still unreferenced, then the files of those."""
        tombs = await self.files.bury(sizes)
        try:
            dead = await delete_rows(_as_is)
        except Exception:
            # Nothing was deleted: every file goes back. (A cancellation leaves them to the
            # next pass's recovery, which goes by the rows as they are then.)
            await self.files.settle(tombs, ())
            raise
        freed = await self.files.settle(tombs, dead)
        return Removed(len({str(t.digest) for t in tombs} & dead), freed, frozenset(dead))

    async def expire_uploads(self, expired: float, dry_run: bool) -> Expired:
        result = Expired()
        rows = await self.db.fetchall(
            "SELECT id, digest FROM uploads WHERE updated_at < ?", (expired,)
        )
        for row in rows:
            path = self.uploads_root / str(row["id"])
            result.uploads += 1
            if dry_run:
                result.bytes += await asyncio.to_thread(_size_or_zero, path)
                continue
            # Files first, the row last: the row is what remembers them.
            if row["digest"] and not await self.files.has_row(row["digest"]):
                # The session died between linking its file into blobs/ and the row's commit.
                with contextlib.suppress(InvalidDigest):
                    if await self.files.remove(Digest.parse(row["digest"])) is not None:
                        result.orphan_files += 1
            result.bytes += await asyncio.to_thread(unlink_counting, path)
            for companion in companion_files(self.uploads_root, str(row["id"])):
                await asyncio.to_thread(unlink_counting, companion)
            await self.db.execute(
                "DELETE FROM uploads WHERE id = ? AND updated_at < ?", (row["id"], expired)
            )
        # Files whose session row was never committed (a crash inside `create`), or is gone.
        known = {str(row["id"]) for row in await self.db.fetchall("SELECT id FROM uploads")}
        for path in await asyncio.to_thread(list_files, self.uploads_root):
            upload_id = path.name.split(".", 1)[0]
            if upload_id in known or await asyncio.to_thread(_mtime, path) >= expired:
                continue
            result.uploads += 1
            if dry_run:
                result.bytes += await asyncio.to_thread(_size_or_zero, path)
            else:
                result.bytes += await asyncio.to_thread(unlink_counting, path)
        return result


def _size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()
