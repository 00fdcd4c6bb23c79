"""Garbage collection's review queues: which blobs and manifests die, decided item by item.

A pass never looks at all the data. Triggers (storage/schema.py) queue whatever may have lost
its last hold: a new blob or manifest, a dropped reference, a deleted or moved tag, a deleted
subject, a deleted Beaker image (metadata/schema.py). Each item carries `review_after`, the time
its grace period counts from (0 when only a hold was dropped: the grace then counts from the
item's own times, read at review). A pass takes the items older than the grace period, in
batches, and decides each one:
- gone (deleted meanwhile): dropped from the queue; a manifest's content goes with the last
  manifest of that digest;
- held (a blob referenced by a manifest; a manifest tagged, listed by an index, referring to a
  stored subject, pinned by a Beaker image, in an immutable repository): dropped, since
  whatever releases that hold queues the item again;
- young (created or, for a blob, linked within the grace period): `review_after` moves to that
  time;
- otherwise dead: its rows are deleted (for a blob, once its file is in trash/: storage/gc.py).

The decision that deletes is made inside the transaction that deletes, so a push committed
before it is seen and one committed after it finds the rows gone. On PostgreSQL the queue rows
are claimed with `FOR UPDATE SKIP LOCKED`, so several replicas may drain at once and never
decide one item twice; on SQLite the write transaction is already the only one.

Manifests are collected only under the `untagged_manifests` policy. Without it, reviewed
manifests that still exist leave the queue, and a note (`gc_state`) says so: the first pass
with the policy on then queues every untagged manifest once again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from storage.blobstore import InsideDelete
from storage.database import Connection, Database, Row

_UNTAGGED_KEPT = "untagged_manifests_kept"


class PinSource(Protocol):
    async def pinned(self, manifests: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (repository, manifest digest) a Beaker image pinned."""
        ...


# -- blobs ----------------------------------------------------------------------------------

_BLOBS = """
SELECT q.digest, q.review_after, b.size, b.created_at,
    (SELECT max(l.created_at) FROM repository_blobs l WHERE l.digest = q.digest) AS linked_at,
    CASE WHEN EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.child_digest = q.digest)
        THEN 1 ELSE 0 END AS referenced
FROM gc_blob_review q LEFT JOIN blobs b ON b.digest = q.digest
"""
_DUE_BLOBS = (
    _BLOBS + " WHERE q.review_after < ? AND (q.review_after, q.digest) > (?, ?)"
    " ORDER BY q.review_after, q.digest LIMIT ?"
)


@dataclass(slots=True)
class BlobVerdicts:
    """One batch of the blob queue, decided."""

    dead: dict[str, int] = field(default_factory=dict)  # digest: size
    dropped: list[str] = field(default_factory=list)  # gone or referenced
    young: dict[str, float] = field(default_factory=dict)  # digest: new review time


def _blob_verdicts(rows: Iterable[Row], cutoff: float) -> BlobVerdicts:
    verdicts = BlobVerdicts()
    for row in rows:
        digest = str(row["digest"])
        if row["size"] is None or row["referenced"]:
            verdicts.dropped.append(digest)
            continue
        newest = max(float(row["created_at"]), float(row["linked_at"] or 0.0))
        if newest >= cutoff:
            verdicts.young[digest] = newest
        else:
            verdicts.dead[digest] = int(row["size"])
    return verdicts


@dataclass(frozen=True, slots=True)
class BlobPage:
    digests: list[str]
    verdicts: BlobVerdicts
    cursor: tuple[float, str]


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


class Review:
    def __init__(self, db: Database, pins: PinSource | None = None) -> None:
        self.db = db
        # Without a source of pins (storage used alone), no Beaker image pins anything.
        self.pins = pins
        self._claim = " FOR UPDATE OF q SKIP LOCKED" if db.dialect == "postgresql" else ""

    async def blob_page(self, cutoff: float, after: tuple[float, str], limit: int) -> BlobPage:
        """The next batch of due blobs after `after`, as it looks now (read only)."""
        rows = await self.db.fetchall(_DUE_BLOBS, (cutoff, *after, limit))
        if not rows:
            return BlobPage([], BlobVerdicts(), after)
        last = rows[-1]
        return BlobPage(
            [str(row["digest"]) for row in rows],
            _blob_verdicts(rows, cutoff),
            (float(last["review_after"]), str(last["digest"])),
        )

    async def delete_blobs(
        self,
        conn: Connection,
        digests: Sequence[str],
        candidates: Sequence[str],
        cutoff: float,
        inside: InsideDelete,
    ) -> set[str]:
        """Inside the deleting transaction: decide `digests` again and delete the rows of the
        `candidates` still dead whose bytes the store removed (`inside`); returns those. The
        others leave the queue or wait, by their verdict; a blob that died only since the
        batch was read waits for the next pass, its bytes not being set aside."""
        rows = await conn.execute_fetchall(
            _BLOBS + f" WHERE q.digest IN ({_marks(digests)}){self._claim}", list(digests)
        )
        verdicts = _blob_verdicts(rows, cutoff)
        dead = [d for d in candidates if d in verdicts.dead]
        gone = await inside(conn, dead) if dead else set()
        rows_gone = [(d,) for d in gone]
        await conn.executemany("DELETE FROM repository_blobs WHERE digest = ?", rows_gone)
        await conn.executemany("DELETE FROM blobs WHERE digest = ?", rows_gone)
        await conn.executemany(
            "DELETE FROM gc_blob_review WHERE digest = ?",
            rows_gone + [(d,) for d in verdicts.dropped],
        )
        await conn.executemany(
            "UPDATE gc_blob_review SET review_after = ? WHERE digest = ?",
            [(when, d) for d, when in verdicts.young.items()],
        )
        return gone

    async def rows_left(self, conn: Connection, digests: Sequence[str]) -> set[str]:
        """Which of `digests` still have a blob row, inside the caller's transaction."""
        if not digests:
            return set()
        rows = await conn.execute_fetchall(
            f"SELECT digest FROM blobs WHERE digest IN ({_marks(digests)})", list(digests)
        )
        return {str(row[0]) for row in rows}

    # -- manifests ------------------------------------------------------------------------

    async def collect_manifests(
        self, cutoff: float, untagged: bool, dry_run: bool, batch: int
    ) -> int:
        """Review every due manifest; returns how many were (or, dry, would be) deleted.

        Deleting an index or a subject queues its children or referrers with review time 0:
        rounds go on until one deletes nothing, so they go in the same pass.
        """
        if untagged and not dry_run:
            await self._requeue_untagged()
        total = 0
        while True:
            deleted = await self._manifest_round(cutoff, untagged, dry_run, batch)
            total += deleted
            if dry_run or not deleted:
                return total

    async def _manifest_round(
        self, cutoff: float, untagged: bool, dry_run: bool, batch: int
    ) -> int:
        after: tuple[float, int, str] = (-1.0, -1, "")
        deleted = 0
        while True:
            if dry_run:
                rows = await self.db.fetchall(_DUE_MANIFESTS, (cutoff, *after, batch))
                if not rows:
                    return deleted
                deleted += len(await self._dead_manifests(rows, cutoff, untagged))
            else:
                async with self.db.transaction() as conn:
                    rows = list(
                        await conn.execute_fetchall(
                            _DUE_MANIFESTS + self._claim, (cutoff, *after, batch)
                        )
                    )
                    if not rows:
                        return deleted
                    deleted += await self._decide_manifests(conn, rows, cutoff, untagged)
            last = rows[-1]
            after = (float(last["review_after"]), int(last["repository_id"]), str(last["digest"]))

    async def _dead_manifests(
        self, rows: Sequence[Row], cutoff: float, untagged: bool
    ) -> list[tuple[int, str]]:
        candidates = [
            row
            for row in rows
            if untagged
            and row["created_at"] is not None
            and not row["immutable"]
            and not row["held"]
            and float(row["created_at"]) < cutoff
        ]
        pinned = (
            await self.pins.pinned([(str(r["name"]), str(r["digest"])) for r in candidates])
            if self.pins is not None and candidates
            else set()
        )
        return [
            (int(r["repository_id"]), str(r["digest"]))
            for r in candidates
            if (str(r["name"]), str(r["digest"])) not in pinned
        ]

    async def _decide_manifests(
        self, conn: Connection, rows: Sequence[Row], cutoff: float, untagged: bool
    ) -> int:
        # The pins are read while this transaction holds the write lock: no image commits
        # (or is deleted) between the answer and the delete.
        dead = await self._dead_manifests(rows, cutoff, untagged)
        young = [
            (float(row["created_at"]), int(row["repository_id"]), str(row["digest"]))
            for row in rows
            if untagged
            and row["created_at"] is not None
            and not row["immutable"]
            and not row["held"]
            and float(row["created_at"]) >= cutoff
        ]
        gone = [str(row["digest"]) for row in rows if row["created_at"] is None]
        # A deleted manifest queues itself again (review time 0): the next round finds it
        # gone and takes its content. Every other item reviewed here leaves the queue.
        waiting = set(dead) | {(key[1], key[2]) for key in young}
        dropped = [
            (int(row["repository_id"]), str(row["digest"]))
            for row in rows
            if (int(row["repository_id"]), str(row["digest"])) not in waiting
        ]
        # References and tags go with the manifests (ON DELETE CASCADE); their triggers queue
        # what those held.
        await conn.executemany("DELETE FROM manifests WHERE repository_id = ? AND digest = ?", dead)
        await conn.executemany(
            "DELETE FROM gc_manifest_review WHERE repository_id = ? AND digest = ?", dropped
        )
        await conn.executemany(
            "UPDATE gc_manifest_review SET review_after = ? WHERE repository_id = ? AND digest = ?",
            young,
        )
        await conn.executemany(
            "DELETE FROM manifest_contents WHERE digest = ?"
            " AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = ?)",
            [(digest, digest) for digest in dict.fromkeys(gone)],
        )
        if not untagged and any(row["created_at"] is not None for row in rows):
            await conn.execute(
                "INSERT INTO gc_state (name, value) VALUES (?, 1)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (_UNTAGGED_KEPT,),
            )
        return len(dead)

    async def _requeue_untagged(self) -> None:
        """Queue every untagged manifest once, if a pass without the policy dropped some."""
        async with self.db.transaction() as conn:
            noted = await conn.execute_fetchall(
                "SELECT 1 FROM gc_state WHERE name = ?", (_UNTAGGED_KEPT,)
            )
            if not list(noted):
                return
            await conn.execute(
                "INSERT INTO gc_manifest_review (repository_id, digest, review_after)"
                " SELECT m.repository_id, m.digest, m.created_at FROM manifests m"
                " WHERE NOT EXISTS (SELECT 1 FROM tags t"
                " WHERE t.repository_id = m.repository_id AND t.digest = m.digest)"
                " ON CONFLICT (repository_id, digest) DO NOTHING"
            )
            await conn.execute("DELETE FROM gc_state WHERE name = ?", (_UNTAGGED_KEPT,))


# A manifest is held by a tag, by an index listing it, or by a referrer's stored subject (all
# within its repository); `created_at` is NULL when it is gone.
_DUE_MANIFESTS = """
SELECT q.repository_id, q.digest, q.review_after, m.created_at, r.name, r.immutable,
    CASE WHEN EXISTS (SELECT 1 FROM tags t
            WHERE t.repository_id = q.repository_id AND t.digest = q.digest)
        OR EXISTS (SELECT 1 FROM manifest_references p
            WHERE p.repository_id = q.repository_id AND p.child_digest = q.digest
            AND p.child_is_manifest = 1)
        OR EXISTS (SELECT 1 FROM manifests s
            WHERE s.repository_id = q.repository_id AND s.digest = m.subject)
        THEN 1 ELSE 0 END AS held
FROM gc_manifest_review q
LEFT JOIN manifests m ON m.repository_id = q.repository_id AND m.digest = q.digest
LEFT JOIN repositories r ON r.id = q.repository_id
WHERE q.review_after < ? AND (q.review_after, q.repository_id, q.digest) > (?, ?, ?)
ORDER BY q.review_after, q.repository_id, q.digest LIMIT ?
"""
