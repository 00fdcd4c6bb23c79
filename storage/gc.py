"""Online garbage collection: unreferenced blobs, unheld manifests and expired upload sessions.

It runs while pushes and pulls go on (no read-only mode). What is live is computed in SQL from
reference rows, never by walking files:
- a manifest is held by a tag, by a held index that lists it, by a held subject it refers to
  (a referrer), by the Beaker image that pinned it, by its repository being immutable, or by
  being younger than the grace period; unheld manifests are collected only when
  `untagged_manifests` is on (pushes by digest are otherwise kept);
- a blob is held by any manifest that references it, or by being created or linked into a
  repository within the grace period. Links are refreshed each time a client pushes, mounts or
  references the blob, so a push in flight never loses a blob it was told exists;
- an upload session expires when nothing touched it for `upload_expiry_seconds`.

Rows go first, in a transaction; files after the commit.

Removing a blob file, while an upload of the same digest may be publishing (the protocol
shared with storage/uploads.py). A publishing upload hard-links its staged file to the blob's
path (unless a copy is there), commits the blob's row, and only then drops its staged link, or
moves it into place if the path is empty by then. The collector renames the blob file into
`trash/` first, then checks for a row: a row means a push re-created the blob meanwhile, and
the file goes back; no row, and the file is deleted. Whatever the interleaving, a committed row
ends with a file. A crash between the rename and the check leaves the file in `trash/`, which
the next pass (or fsck) restores or deletes by the same rule.

One collection runs at a time across every process on a data folder (a lock file).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from storage.blobs import BlobStore, fsync_dir
from storage.database import Database
from storage.digests import Digest, InvalidDigest
from storage.sizes import human_bytes

log = logging.getLogger("beakerd.gc")

_BATCH = 500
LOCK_FILE = "gc.lock"
TRASH_FOLDER = "trash"


class GcBusy(RuntimeError):
    """Another collection (or an fsck repair) holds the data folder's GC lock."""


@dataclass(frozen=True, slots=True)
class GcPolicy:
    grace_seconds: float = 3600.0
    upload_expiry_seconds: float = 86400.0
    untagged_manifests: bool = False


@dataclass(slots=True)
class GcReport:
    dry_run: bool = False
    manifests: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    uploads: int = 0
    upload_bytes: int = 0
    orphan_files: int = 0
    seconds: float = 0.0

    @property
    def freed_bytes(self) -> int:
        return self.blob_bytes + self.upload_bytes

    @property
    def removed_anything(self) -> bool:
        return bool(self.manifests or self.blobs or self.uploads or self.orphan_files)

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (
            f"gc: {verb} {self.blobs} blobs ({human_bytes(self.blob_bytes)}),"
            f" {self.manifests} manifests, {self.uploads} upload sessions"
            f" ({human_bytes(self.upload_bytes)}), {self.orphan_files} orphan files;"
            f" {human_bytes(self.freed_bytes)} {'to free' if self.dry_run else 'freed'}"
            f" in {self.seconds:.2f}s"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "freed_bytes": self.freed_bytes}


@contextlib.asynccontextmanager
async def gc_lock(root: Path) -> AsyncIterator[None]:
    """The data folder's collection lock, or GcBusy at once if another process holds it."""
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise GcBusy("another garbage collection is running on this data folder") from e
            raise
        yield
    finally:
        os.close(fd)  # closing releases the lock


class BlobFiles:
    """Removal of blob files by the trash protocol in this module's docstring."""

    def __init__(self, db: Database, root: Path) -> None:
        self.db = db
        self.store = BlobStore(root / "blobs")
        self.trash = root / TRASH_FOLDER

    async def has_row(self, digest: str) -> bool:
        row = await self.db.fetchone("SELECT 1 FROM blobs WHERE digest = ?", (digest,))
        return row is not None

    async def remove(self, digest: Digest) -> int | None:
        """Delete the file of a blob that has no row; returns the bytes freed, None if kept."""
        target = self.store.path(digest)
        tomb = self.trash / f"{digest.algorithm}-{digest.hex}.{uuid.uuid4().hex[:12]}"
        if not await asyncio.to_thread(_bury, target, tomb):
            return None
        if await self.has_row(str(digest)):
            await asyncio.to_thread(_restore, tomb, target)
            return None
        return await asyncio.to_thread(_unlink_counting, tomb)

    async def recover_trash(self) -> int:
        """Settle files a crash left in trash/: restore those with rows, delete the rest."""
        removed = 0
        for tomb in await asyncio.to_thread(_list_files, self.trash):
            digest = _tomb_digest(tomb.name)
            if digest is not None and await self.has_row(str(digest)):
                await asyncio.to_thread(_restore, tomb, self.store.path(digest))
            else:
                await asyncio.to_thread(_unlink_counting, tomb)
                removed += 1
        return removed


def _bury(target: Path, tomb: Path) -> bool:
    tomb.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(target, tomb)
    except FileNotFoundError:
        return False
    return True


def _restore(tomb: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.link(tomb, target)  # a push may have put a fresh copy there already: same bytes
    fsync_dir(target.parent)
    tomb.unlink(missing_ok=True)


def _unlink_counting(path: Path) -> int:
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size


def _list_files(folder: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _tomb_digest(name: str) -> Digest | None:
    algorithm, _, rest = name.partition("-")
    try:
        return Digest.parse(f"{algorithm}:{rest.split('.', 1)[0]}")
    except InvalidDigest:
        return None


# Manifests a collection must keep. `live` starts from the roots and follows index entries and
# referrers within a repository.
_LIVE_MANIFESTS = """
WITH RECURSIVE live (repository_id, digest) AS (
    SELECT repository_id, digest FROM tags
    UNION SELECT repository_id, digest FROM manifests WHERE created_at >= ?
    UNION SELECT m.repository_id, m.digest FROM manifests m
        JOIN repositories r ON r.id = m.repository_id WHERE r.immutable
    {image_roots}
    UNION SELECT mr.repository_id, mr.child_digest FROM manifest_references mr
        JOIN live l ON l.repository_id = mr.repository_id AND l.digest = mr.manifest_digest
        WHERE mr.child_is_manifest = 1
    UNION SELECT m.repository_id, m.digest FROM manifests m
        JOIN live l ON l.repository_id = m.repository_id AND m.subject = l.digest
)
SELECT m.repository_id, m.digest FROM manifests m
WHERE NOT EXISTS (
    SELECT 1 FROM live l WHERE l.repository_id = m.repository_id AND l.digest = m.digest
)
"""

_IMAGE_ROOTS = """
    UNION SELECT r.id, i.digest FROM images i JOIN repositories r ON r.name = i.repository
        WHERE i.digest IS NOT NULL
"""

_UNREFERENCED_BLOBS = """
SELECT b.digest, b.size FROM blobs b
WHERE b.created_at < ?
  AND NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.child_digest = b.digest)
  AND NOT EXISTS (
      SELECT 1 FROM repository_blobs l WHERE l.digest = b.digest AND l.created_at >= ?
  )
"""


class GarbageCollector:
    def __init__(
        self,
        db: Database,
        root: Path,
        policy: GcPolicy,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.root = root
        self.policy = policy
        self.files = BlobFiles(db, root)
        self.uploads_root = root / "uploads"
        # Called after a commit that removed manifests or blobs, so read caches drop them.
        self.on_change = on_change

    async def collect(self, dry_run: bool = False) -> GcReport:
        """One pass; raises GcBusy when another process is collecting."""
        started = time.monotonic()
        report = GcReport(dry_run=dry_run)
        async with gc_lock(self.root):
            if not dry_run:
                report.orphan_files += await self.files.recover_trash()
            now = time.time()
            cutoff = now - self.policy.grace_seconds
            if self.policy.untagged_manifests:
                await self._collect_manifests(report, cutoff, dry_run)
            if not dry_run:
                await self.db.execute(
                    "DELETE FROM manifest_contents WHERE NOT EXISTS"
                    " (SELECT 1 FROM manifests m WHERE m.digest = manifest_contents.digest)"
                )
            await self._collect_blobs(report, cutoff, dry_run)
            await self._collect_uploads(report, now - self.policy.upload_expiry_seconds, dry_run)
        report.seconds = time.monotonic() - started
        return report

    async def _image_roots(self) -> str:
        row = await self.db.fetchone(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'images'"
        )
        return _IMAGE_ROOTS if row else ""

    async def _collect_manifests(self, report: GcReport, cutoff: float, dry_run: bool) -> None:
        query = _LIVE_MANIFESTS.format(image_roots=await self._image_roots())
        if dry_run:
            report.manifests += len(await self.db.fetchall(query, (cutoff,)))
            return
        async with self.db.transaction() as conn:
            dead = list(await conn.execute_fetchall(query, (cutoff,)))
            # References and tags go with them (ON DELETE CASCADE).
            await conn.executemany(
                "DELETE FROM manifests WHERE repository_id = ? AND digest = ?",
                [(row[0], row[1]) for row in dead],
            )
        report.manifests += len(dead)
        if dead and self.on_change:
            self.on_change()

    async def _collect_blobs(self, report: GcReport, cutoff: float, dry_run: bool) -> None:
        if dry_run:
            rows = await self.db.fetchall(_UNREFERENCED_BLOBS, (cutoff, cutoff))
            report.blobs += len(rows)
            report.blob_bytes += sum(int(row["size"]) for row in rows)
            return
        while True:
            # Select and delete in one transaction: a manifest committed before it is seen,
            # one committed after it finds the row gone (and its client pushes the blob again).
            async with self.db.transaction() as conn:
                rows = list(
                    await conn.execute_fetchall(
                        _UNREFERENCED_BLOBS + f" LIMIT {_BATCH}", (cutoff, cutoff)
                    )
                )
                digests = [(str(row[0]),) for row in rows]
                await conn.executemany("DELETE FROM repository_blobs WHERE digest = ?", digests)
                await conn.executemany("DELETE FROM blobs WHERE digest = ?", digests)
            if rows and self.on_change:
                self.on_change()
            for row in rows:
                freed = await self._remove_file(str(row[0]))
                if freed is not None:
                    report.blobs += 1
                    report.blob_bytes += freed
            if len(rows) < _BATCH:
                return

    async def _remove_file(self, digest: str) -> int | None:
        try:
            parsed = Digest.parse(digest)
        except InvalidDigest:
            return None
        return await self.files.remove(parsed)

    async def _collect_uploads(self, report: GcReport, expired: float, dry_run: bool) -> None:
        rows = await self.db.fetchall(
            "SELECT id, digest FROM uploads WHERE updated_at < ?", (expired,)
        )
        if not dry_run and rows:
            async with self.db.transaction() as conn:
                await conn.executemany(
                    "DELETE FROM uploads WHERE id = ? AND updated_at < ?",
                    [(row["id"], expired) for row in rows],
                )
        for row in rows:
            path = self.uploads_root / str(row["id"])
            report.uploads += 1
            if dry_run:
                report.upload_bytes += await asyncio.to_thread(_size_or_zero, path)
                continue
            report.upload_bytes += await asyncio.to_thread(_unlink_counting, path)
            await asyncio.to_thread(_unlink_counting, path.with_name(path.name + ".unshared"))
            if row["digest"] and not await self.files.has_row(row["digest"]):
                # The session died between linking its file into blobs/ and the row's commit.
                if await self._remove_file(row["digest"]) is not None:
                    report.orphan_files += 1
        # Files whose session row was never committed (a crash inside `create`).
        known = {str(row["id"]) for row in await self.db.fetchall("SELECT id FROM uploads")}
        for path in await asyncio.to_thread(_list_files, self.uploads_root):
            upload_id = path.name.split(".", 1)[0]
            if upload_id in known or await asyncio.to_thread(_mtime, path) >= expired:
                continue
            report.uploads += 1
            if dry_run:
                report.upload_bytes += await asyncio.to_thread(_size_or_zero, path)
            else:
                report.upload_bytes += await asyncio.to_thread(_unlink_counting, path)


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


async def run_periodically(
    collector: GarbageCollector,
    interval: float,
    on_report: Callable[[GcReport], None] = lambda report: None,
) -> None:
    """The server's background pass: every `interval` seconds, logging what each pass freed
    and handing its report to `on_report` (the server counts passes in its metrics)."""
    while True:
        await asyncio.sleep(interval)
        try:
            report = await collector.collect()
        except GcBusy:
            log.debug("gc: skipped, another collection is running")
            continue
        except Exception:
            log.exception("gc: pass failed")
            continue
        on_report(report)
        if report.removed_anything:
            log.info("%s", report.summary())
        else:
            log.debug("%s", report.summary())
