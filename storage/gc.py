"""Online garbage collection: unreferenced blobs, unheld manifests, orphan repositories and
expired upload sessions.

It runs while pushes and pulls go on (no read-only mode). What is live is computed in SQL from
reference rows, never by walking files:
- a manifest is held by a tag, by a held index that lists it, by a held subject it refers to
  (a referrer), by the Beaker image that pinned it, by its repository being immutable, or by
  being younger than the grace period; unheld manifests are collected only when
  `untagged_manifests` is on (pushes by digest are otherwise kept);
- a repository is held by an account's namespace or a Beaker image (storage/orphans.py); one
  that neither holds (an orphan) goes, with its tags, manifests and links, once older than the
  grace period;
- a blob is held by any manifest that references it, or by being created or linked into a
  repository within the grace period. Links are refreshed each time a client pushes, mounts or
  references the blob, so a push in flight never loses a blob it was told exists;
- an upload session expires when nothing touched it for `upload_expiry_seconds`.

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
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from storage.database import Database, Dialect
from storage.digests import Digest, InvalidDigest
from storage.orphans import RepositoryOwners, remove_orphans
from storage.sizes import human_bytes
from storage.trash import BlobFiles, list_files, unlink_counting
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
            self.manifests or self.repositories or self.blobs or self.uploads or self.orphan_files
        )

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (
            f"gc: {verb} {self.blobs} blobs ({human_bytes(self.blob_bytes)}),"
            f" {self.manifests} manifests, {self.repositories} orphan repositories,"
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


# Manifests a collection must keep. `live` starts from the roots and follows index entries and
# referrers within a repository. The second parameter is a JSON array of the [repository,
# digest] pins of Beaker images, which each engine unpacks its own way.
_PINS = {
    "sqlite": "SELECT r.id, json_extract(p.value, '$[1]') FROM json_each(?) p"
    " JOIN repositories r ON r.name = json_extract(p.value, '$[0]')",
    "postgresql": "SELECT r.id, p.value ->> 1 FROM jsonb_array_elements(CAST(? AS jsonb)) p"
    " JOIN repositories r ON r.name = p.value ->> 0",
}


# One step of following references from a live manifest: to the manifests an index lists, and
# to the referrers whose subject it is. SQLite takes the two as two recursive selects;
# PostgreSQL allows one recursive term referring to `live` once, so the two are a LATERAL union.
_FOLLOW = {
    "sqlite": """SELECT mr.repository_id, mr.child_digest FROM manifest_references mr
        JOIN live l ON l.repository_id = mr.repository_id AND l.digest = mr.manifest_digest
        WHERE mr.child_is_manifest = 1
    UNION SELECT m.repository_id, m.digest FROM manifests m
        JOIN live l ON l.repository_id = m.repository_id AND m.subject = l.digest""",
    "postgresql": """SELECT next.repository_id, next.digest FROM live l CROSS JOIN LATERAL (
        SELECT mr.repository_id, mr.child_digest AS digest FROM manifest_references mr
            WHERE mr.repository_id = l.repository_id AND mr.manifest_digest = l.digest
            AND mr.child_is_manifest = 1
        UNION ALL SELECT m.repository_id, m.digest FROM manifests m
            WHERE m.repository_id = l.repository_id AND m.subject = l.digest
    ) next""",
}


def _live_manifests(dialect: Dialect) -> str:
    return f"""
WITH RECURSIVE live (repository_id, digest) AS (
    SELECT repository_id, digest FROM tags
    UNION SELECT repository_id, digest FROM manifests WHERE created_at >= ?
    UNION SELECT m.repository_id, m.digest FROM manifests m
        JOIN repositories r ON r.id = m.repository_id WHERE r.immutable = 1
    UNION {_PINS[dialect]}
    UNION {_FOLLOW[dialect]}
)
SELECT m.repository_id, m.digest FROM manifests m
WHERE NOT EXISTS (
    SELECT 1 FROM live l WHERE l.repository_id = m.repository_id AND l.digest = m.digest
)
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
        on_change: Callable[[], Awaitable[None]] | None = None,
        owners: RepositoryOwners | None = None,
    ) -> None:
        self.db = db
        self.root = root
        self.policy = policy
        self.files = BlobFiles(db, root)
        self.uploads_root = root / "uploads"
        # Called after a commit that removed manifests or blobs, so read caches drop them.
        self.on_change = on_change
        # Who holds repositories (the layers above storage know); without it no repository
        # counts as an orphan and no Beaker image pins a manifest.
        self.owners = owners

    async def collect(self, dry_run: bool = False) -> GcReport:
        """One pass; raises GcBusy when another process is collecting."""
        started = time.monotonic()
        report = GcReport(dry_run=dry_run)
        async with gc_lock(self.db, self.root):
            if not dry_run:
                report.orphan_files += await self.files.recover()
            now = time.time()
            cutoff = now - self.policy.grace_seconds
            if self.owners is not None:
                await self._collect_repositories(self.owners, report, cutoff, dry_run)
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

    async def recover(self) -> None:
        """Settle what an interrupted pass left in trash/, unless a collection is running."""
        if not await self.files.anything_in_trash():
            return
        with contextlib.suppress(GcBusy):
            async with gc_lock(self.db, self.root):
                await self.files.recover()

    async def _collect_repositories(
        self, owners: RepositoryOwners, report: GcReport, cutoff: float, dry_run: bool
    ) -> None:
        removed = await remove_orphans(self.db, owners, cutoff, dry_run)
        report.repositories += len(removed)
        if removed and not dry_run and self.on_change:
            await self.on_change()

    async def _pins(self) -> str:
        pins = await self.owners.pins() if self.owners is not None else []
        return json.dumps([list(pin) for pin in pins])

    async def _collect_manifests(self, report: GcReport, cutoff: float, dry_run: bool) -> None:
        if dry_run:
            dead = await self.db.fetchall(
                _live_manifests(self.db.dialect), (cutoff, await self._pins())
            )
            report.manifests += len(dead)
            return
        async with self.db.transaction() as conn:
            # The pins are read inside the transaction: no image commits in between.
            rows = await conn.execute_fetchall(
                _live_manifests(self.db.dialect), (cutoff, await self._pins())
            )
            dead = list(rows)
            # References and tags go with them (ON DELETE CASCADE).
            await conn.executemany(
                "DELETE FROM manifests WHERE repository_id = ? AND digest = ?",
                [(row[0], row[1]) for row in dead],
            )
        report.manifests += len(dead)
        if dead and self.on_change:
            await self.on_change()

    async def _collect_blobs(self, report: GcReport, cutoff: float, dry_run: bool) -> None:
        if dry_run:
            rows = await self.db.fetchall(_UNREFERENCED_BLOBS, (cutoff, cutoff))
            report.blobs += len(rows)
            report.blob_bytes += sum(int(row["size"]) for row in rows)
            return
        last = ""
        while True:
            rows = await self.db.fetchall(
                _UNREFERENCED_BLOBS + " AND b.digest > ? ORDER BY b.digest LIMIT ?",
                (cutoff, cutoff, last, _BATCH),
            )
            if not rows:
                return
            last = str(rows[-1]["digest"])
            digests = _parsed([str(row["digest"]) for row in rows])
            if digests:
                await self._remove_blobs(report, digests, cutoff)

    async def _remove_blobs(self, report: GcReport, digests: list[Digest], cutoff: float) -> None:
        """Files into trash/, then the rows still unreferenced, then the files of those."""
        tombs = await self.files.bury(digests)
        try:
            async with self.db.transaction() as conn:
                # Checked again in the transaction that deletes: a manifest committed before
                # it is seen, one committed after it finds the row gone (and its client pushes
                # the blob again).
                marks = ",".join("?" * len(digests))
                dead = [
                    str(row[0])
                    for row in await conn.execute_fetchall(
                        _UNREFERENCED_BLOBS + f" AND b.digest IN ({marks})",
                        (cutoff, cutoff, *map(str, digests)),
                    )
                ]
                await conn.executemany(
                    "DELETE FROM repository_blobs WHERE digest = ?", [(d,) for d in dead]
                )
                await conn.executemany("DELETE FROM blobs WHERE digest = ?", [(d,) for d in dead])
        except Exception:
            # Nothing was deleted: every file goes back. (A cancellation leaves them to the
            # next pass's recovery, which goes by the rows as they are then.)
            await self.files.settle(tombs, ())
            raise
        if dead and self.on_change:
            await self.on_change()
        report.blob_bytes += await self.files.settle(tombs, set(dead))
        report.blobs += len({str(t.digest) for t in tombs} & set(dead))

    async def _collect_uploads(self, report: GcReport, expired: float, dry_run: bool) -> None:
        rows = await self.db.fetchall(
            "SELECT id, digest FROM uploads WHERE updated_at < ?", (expired,)
        )
        for row in rows:
            path = self.uploads_root / str(row["id"])
            report.uploads += 1
            if dry_run:
                report.upload_bytes += await asyncio.to_thread(_size_or_zero, path)
                continue
            # Files first, the row last: the row is what remembers them.
            if row["digest"] and not await self.files.has_row(row["digest"]):
                # The session died between linking its file into blobs/ and the row's commit.
                with contextlib.suppress(InvalidDigest):
                    if await self.files.remove(Digest.parse(row["digest"])) is not None:
                        report.orphan_files += 1
            report.upload_bytes += await asyncio.to_thread(unlink_counting, path)
            await asyncio.to_thread(unlink_counting, path.with_name(path.name + ".unshared"))
            await self.db.execute(
                "DELETE FROM uploads WHERE id = ? AND updated_at < ?", (row["id"], expired)
            )
        # Files whose session row was never committed (a crash inside `create`), or is gone.
        known = {str(row["id"]) for row in await self.db.fetchall("SELECT id FROM uploads")}
        for path in await asyncio.to_thread(list_files, self.uploads_root):
            upload_id = path.name.split(".", 1)[0]
            if upload_id in known or await asyncio.to_thread(_mtime, path) >= expired:
                continue
            report.uploads += 1
            if dry_run:
                report.upload_bytes += await asyncio.to_thread(_size_or_zero, path)
            else:
                report.upload_bytes += await asyncio.to_thread(unlink_counting, path)


def _parsed(digests: list[str]) -> list[Digest]:
    parsed = []
    for text in digests:
        with contextlib.suppress(InvalidDigest):
            parsed.append(Digest.parse(text))
    return parsed


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
