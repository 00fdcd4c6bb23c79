"""Online garbage collection: unreferenced blobs, unheld manifests, orphan repositories and
expired upload sessions.

It runs while pushes and pulls go on (no read-only mode). What is live is decided in SQL from
reference rows, never by walking files, and only for what may have lost its last hold: the
review queues that triggers fill (storage/review.py), so a pass costs what the garbage is, not
what the store holds:
- a manifest is held by a tag, by a held index that lists it, by a held subject it refers to
  (a referrer), by the Beaker image that pinned it, by its repository being immutable, or by
  being younger than the grace period; unheld manifests are collected only when
  `untagged_manifests` is on (pushes by digest are otherwise kept);
- a repository is held by an account's namespace or a Beaker image (storage/orphans.py); one
  that neither holds (an orphan) goes, with its tags, manifests and links, once older than the
  grace period;
- a blob's link into a repository is held by a manifest of that repository referencing the
  blob, or by being made or refreshed within the grace period (storage/link_review.py);
- a blob is held by any manifest that references it, or by being created or linked into a
  repository within the grace period. Links are refreshed each time a client pushes, mounts or
  references the blob, so a push in flight never loses a blob it was told exists;
- an upload session expires when nothing touched it for `upload_expiry_seconds`.

What removes bytes is the blob store's reclaimer (storage/blobstore/): for an S3 bucket,
storage/blobstore/s3_reclaim.py; for the data folder, the following.

Removing a blob file, so that a kill at any moment leaves nothing the next pass does not
reclaim, and a push of the same digest in the meantime keeps its blob (the protocol shared with
storage/uploads.py is storage/trash.py's): the file is renamed into `trash/` first; then, in
one transaction, the row is deleted if the blob is still unreferenced and old (a push may have
referenced or linked it meanwhile); then the file in `trash/` is deleted, or put back if the
row stayed. While its file is in `trash/` a blob answers as unknown: one batch's time. Each
pass begins by settling what an interrupted one left in `trash/`, as does the server at start.
An expired upload session's row goes only after its files, and after the blob file it may have
left without a row, so that nothing it points at is forgotten.

One collection runs at a time across every process on a store (storage/work_lock.py: a lock
file on SQLite, an advisory lock that spans replicas on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from storage.blobstore import BlobReclaimer, InsideDelete
from storage.blobstore.filesystem import FileReclaimer
from storage.database import Database
from storage.digests import Digest, InvalidDigest
from storage.link_review import LinkReview
from storage.orphans import RepositoryOwners, collect_orphans
from storage.review import BlobPage, Review
from storage.sizes import human_bytes
from storage.trash import BlobFiles
from storage.work_lock import one_at_a_time

log = logging.getLogger("beakerd.gc")

_BATCH = 500


class GcBusy(RuntimeError):
    """Another collection (or an fsck repair) holds the store's GC lock."""


@dataclass(frozen=True, slots=True)
class GcPolicy:
    grace_seconds: float = 3600.0
    upload_expiry_seconds: float = 86400.0
    untagged_manifests: bool = False


@dataclass(slots=True)
class GcReport:
    dry_run: bool = False
    manifests: int = 0
    repositories: int = 0
    links: int = 0
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
        return bool(
            self.manifests
            or self.repositories
            or self.links
            or self.blobs
            or self.uploads
            or self.orphan_files
        )

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (
            f"gc: {verb} {self.blobs} blobs ({human_bytes(self.blob_bytes)}),"
            f" {self.manifests} manifests, {self.repositories} orphan repositories,"
            f" {self.links} dangling links,"
            f" {self.uploads} upload sessions ({human_bytes(self.upload_bytes)}),"
            f" {self.orphan_files} orphan files;"
            f" {human_bytes(self.freed_bytes)} {'to free' if self.dry_run else 'freed'}"
            f" in {self.seconds:.2f}s"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "freed_bytes": self.freed_bytes}


@contextlib.asynccontextmanager
async def gc_lock(db: Database, root: Path) -> AsyncIterator[None]:
    """The store's collection lock, or GcBusy at once if another process (replica) holds it."""
    busy = GcBusy("another garbage collection is running on this store")
    async with one_at_a_time(db, root, "gc", busy):
        yield


class GarbageCollector:
    def __init__(
        self,
        db: Database,
        root: Path,
        policy: GcPolicy,
        on_change: Callable[[], Awaitable[None]] | None = None,
        owners: RepositoryOwners | None = None,
        reclaimer: BlobReclaimer | None = None,
    ) -> None:
        self.db = db
        self.root = root
        self.policy = policy
        # What removes bytes: by default the data folder's files (trash/ and uploads/).
        self.reclaimer = reclaimer or FileReclaimer(db, BlobFiles(db, root), root / "uploads")
        # Called after a commit that removed manifests or blobs, so read caches drop them.
        self.on_change = on_change
        # Who holds repositories (the layers above storage know); without it no repository
        # counts as an orphan and no Beaker image pins a manifest.
        self.owners = owners
        self.review = Review(db, owners)
        self.links = LinkReview(db)

    async def collect(self, dry_run: bool = False) -> GcReport:
        """One pass; raises GcBusy when another process is collecting."""
        started = time.monotonic()
        report = GcReport(dry_run=dry_run)
        async with gc_lock(self.db, self.root):
            if not dry_run:
                report.orphan_files += await self.reclaimer.recover()
            now = time.time()
            cutoff = now - self.policy.grace_seconds
            if self.owners is not None:
                await self._collect_repositories(self.owners, report, cutoff, dry_run)
            await self._collect_manifests(report, cutoff, dry_run)
            report.links += await self.links.collect(cutoff, dry_run, _BATCH)
            await self._collect_blobs(report, cutoff, dry_run)
            await self._collect_uploads(report, now - self.policy.upload_expiry_seconds, dry_run)
        report.seconds = time.monotonic() - started
        return report

    async def recover(self) -> None:
        """Settle what an interrupted pass left in trash/, unless a collection is running."""
        if not await self.reclaimer.has_leftovers():
            return
        with contextlib.suppress(GcBusy):
            async with gc_lock(self.db, self.root):
                await self.reclaimer.recover()

    async def _collect_repositories(
        self, owners: RepositoryOwners, report: GcReport, cutoff: float, dry_run: bool
    ) -> None:
        removed = await collect_orphans(self.db, owners, cutoff, dry_run)
        report.repositories += len(removed)
        if removed and not dry_run and self.on_change:
            await self.on_change()

    async def _collect_manifests(self, report: GcReport, cutoff: float, dry_run: bool) -> None:
        removed = await self.review.collect_manifests(
            cutoff, self.policy.untagged_manifests, dry_run, _BATCH
        )
        report.manifests += removed
        if removed and not dry_run and self.on_change:
            await self.on_change()

    async def _collect_blobs(self, report: GcReport, cutoff: float, dry_run: bool) -> None:
        after: tuple[float, str] = (-1.0, "")
        while True:
            page = await self.review.blob_page(cutoff, after, _BATCH)
            if not page.digests:
                return
            after = page.cursor
            if dry_run:
                report.blobs += len(page.verdicts.dead)
                report.blob_bytes += sum(page.verdicts.dead.values())
            else:
                await self._remove_blobs(report, page, cutoff)

    async def _remove_blobs(self, report: GcReport, page: BlobPage, cutoff: float) -> None:
        """The store removes the bytes of exactly the rows this transaction deletes."""
        sizes = _parsed(page.verdicts.dead)
        candidates = [str(digest) for digest in sizes]

        async def delete_rows(inside: InsideDelete) -> set[str]:
            async with self.db.transaction() as conn:
                # Decided again in the transaction that deletes: a manifest committed before
                # it is seen, one committed after it finds the row gone (and its client pushes
                # the blob again).
                await self.review.delete_blobs(conn, page.digests, candidates, cutoff, inside)
                # Bytes go when their blob has no row, whoever deleted the row (another
                # replica's pass, too).
                return set(candidates) - await self.review.rows_left(conn, candidates)

        if not sizes:
            return
        removed = await self.reclaimer.remove(sizes, delete_rows)
        if removed.rows_deleted and self.on_change:
            await self.on_change()
        report.blob_bytes += removed.bytes
        report.blobs += removed.blobs

    async def _collect_uploads(self, report: GcReport, expired: float, dry_run: bool) -> None:
        result = await self.reclaimer.expire_uploads(expired, dry_run)
        report.uploads += result.uploads
        report.upload_bytes += result.bytes
        report.orphan_files += result.orphan_files


def _parsed(sizes: dict[str, int]) -> dict[Digest, int]:
    parsed = {}
    for text, size in sizes.items():
        with contextlib.suppress(InvalidDigest):
            parsed[Digest.parse(text)] = size
    return parsed


async def run_periodically(
    collector: GarbageCollector,
    interval: float,
    on_report: Callable[[GcReport], None] = lambda report: None,
) -> None:
    """The server's background pass: every `interval` seconds, logging what each pass freed
    and handing its report to `on_report` (the server counts passes in its metrics). At start
    it settles what a killed pass left in trash/, so those blobs are served again at once."""
    try:
        await collector.recover()
    except Exception:
        log.exception("gc: recovering trash/ failed")
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
