"""Garbage collection's review of blob links: a link no manifest of its repository references
goes once older than the grace period.

A link (`repository_blobs`) is what makes a pushed blob visible in its repository until the
manifest that references it arrives, and what counts it against the repository's account
(storage/quotas.py). A blob that some manifest elsewhere references is never collected, so its
dangling link in another repository would stay, counted, for good: a push abandoned halfway,
or refused for its quota and killed before it was undone (storage/refused_pushes.py).

Triggers (storage/schema.py) queue a link when it is made and when a manifest of its repository
stops referencing its blob. A pass takes the items older than the grace period, in batches,
each batch decided and applied in one transaction (claimed with `FOR UPDATE SKIP LOCKED` on
PostgreSQL, as storage/review.py does), item by item:
- gone (the link was deleted meanwhile) or held (a manifest of the repository references the
  blob: a layer, a config, the blobs of an index's child, a referrer or a pinned image's
  manifest are all such): dropped, since dropping that reference queues the link again;
- young (made or refreshed within the grace period): `review_after` moves to that time;
- otherwise dead: the link is deleted. The blob itself is left to the blob review.
"""

from __future__ import annotations

from collections.abc import Sequence

from storage.database import Connection, Database, Row

_DUE_LINKS = """
SELECT q.repository_id, q.digest, q.review_after, l.created_at,
    CASE WHEN EXISTS (SELECT 1 FROM manifest_references mr
            WHERE mr.repository_id = q.repository_id AND mr.child_digest = q.digest
            AND mr.child_is_manifest = 0)
        THEN 1 ELSE 0 END AS held
FROM gc_link_review q
LEFT JOIN repository_blobs l ON l.repository_id = q.repository_id AND l.digest = q.digest
WHERE q.review_after < ? AND (q.review_after, q.repository_id, q.digest) > (?, ?, ?)
ORDER BY q.review_after, q.repository_id, q.digest LIMIT ?
"""


class LinkReview:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._claim = " FOR UPDATE OF q SKIP LOCKED" if db.dialect == "postgresql" else ""

    async def collect(self, cutoff: float, dry_run: bool, batch: int) -> int:
        """Review every due link; returns how many were (or, dry, would be) deleted. The notes
        of links a refused push undid go once as old (storage/refused_pushes.py)."""
        if not dry_run:
            await self.db.execute("DELETE FROM refused_links WHERE created_at < ?", (cutoff,))
        after: tuple[float, int, str] = (-1.0, -1, "")
        deleted = 0
        while True:
            if dry_run:
                rows = await self.db.fetchall(_DUE_LINKS, (cutoff, *after, batch))
                deleted += len(_dead(rows, cutoff))
            else:
                async with self.db.transaction() as conn:
                    rows = list(
                        await conn.execute_fetchall(
                            _DUE_LINKS + self._claim, (cutoff, *after, batch)
                        )
                    )
                    deleted += await _decide(conn, rows, cutoff)
            if not rows:
                return deleted
            last = rows[-1]
            after = (float(last["review_after"]), int(last["repository_id"]), str(last["digest"]))


def _key(row: Row) -> tuple[int, str]:
    return int(row["repository_id"]), str(row["digest"])


def _dead(rows: Sequence[Row], cutoff: float) -> list[tuple[int, str]]:
    return [
        _key(row)
        for row in rows
        if row["created_at"] is not None and not row["held"] and float(row["created_at"]) < cutoff
    ]


async def _decide(conn: Connection, rows: Sequence[Row], cutoff: float) -> int:
    dead = _dead(rows, cutoff)
    young = [
        (float(row["created_at"]), *_key(row))
        for row in rows
        if row["created_at"] is not None and not row["held"] and float(row["created_at"]) >= cutoff
    ]
    waiting = {(key[1], key[2]) for key in young}
    deleted = 0
    for repo_id, digest in dead:
        # Checked again on the row itself: a push may have refreshed or referenced the link
        # since the read (PostgreSQL reads the committed row again for the delete).
        cursor = await conn.execute(
            "DELETE FROM repository_blobs WHERE repository_id = ? AND digest = ?"
            " AND created_at < ? AND NOT EXISTS (SELECT 1 FROM manifest_references mr"
            " WHERE mr.repository_id = ? AND mr.child_digest = ? AND mr.child_is_manifest = 0)",
            (repo_id, digest, cutoff, repo_id, digest),
        )
        deleted += cursor.rowcount
    await conn.executemany(
        "DELETE FROM gc_link_review WHERE repository_id = ? AND digest = ?",
        [_key(row) for row in rows if _key(row) not in waiting],
    )
    await conn.executemany(
        "UPDATE gc_link_review SET review_after = ? WHERE repository_id = ? AND digest = ?",
        young,
    )
    return deleted
