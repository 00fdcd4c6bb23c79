"""Orphan repositories: those that no account namespace and no Beaker image holds.

storage/ does not know accounts or images; the layers above do, and answer through
`RepositoryOwners`, which the composition root (beakerd/) passes in: metadata/owners.py is the
implementation. A repository is an orphan when its owners say no one holds it, e.g. one pushed
again with a stale image credential after its image was deleted, or the namespace of a deleted
account. Garbage collection removes orphans older than the grace period, with their tags,
manifests and blob links (the blobs then go by the usual rules); fsck reports them.

Garbage collection looks only at the repositories in its review queue (`gc_repository_review`,
filled by triggers: a new repository, the repository of a deleted image, those of a deleted or
renamed account), as storage/review.py does for blobs and manifests; fsck looks at them all.
Ownership is asked inside the transaction that deletes: it holds the database's write lock, so
no account or image can appear between the answer and the delete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from storage.database import Database, Row

_PAGE = 500


class RepositoryOwners(Protocol):
    async def owned(self, names: Sequence[str]) -> set[str]:
        """Which of `names` an account's namespace or a Beaker image holds."""
        ...

    async def pinned(self, manifests: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (repository, manifest digest) a Beaker image pinned."""
        ...


@dataclass(frozen=True, slots=True)
class Orphan:
    name: str
    created_at: float
    manifests: int


_PAGE_OF_REPOSITORIES = (
    "SELECT r.id, r.name, r.created_at,"
    " (SELECT count(*) FROM manifests m WHERE m.repository_id = r.id) AS manifests"
    " FROM repositories r WHERE r.name > ? AND r.created_at < ? ORDER BY r.name LIMIT ?"
)


async def find_orphans(db: Database, owners: RepositoryOwners, before: float) -> list[Orphan]:
    """Orphans created before `before`, in name order (read only)."""
    found: list[Orphan] = []
    last = ""
    while True:
        rows = await db.fetchall(_PAGE_OF_REPOSITORIES, (last, before, _PAGE))
        if not rows:
            return found
        last = str(rows[-1]["name"])
        owned = await owners.owned([str(row["name"]) for row in rows])
        found += [
            Orphan(str(row["name"]), float(row["created_at"]), int(row["manifests"]))
            for row in rows
            if row["name"] not in owned
        ]


async def remove_orphans(db: Database, owners: RepositoryOwners, before: float) -> list[str]:
    """Delete every orphan created before `before` (fsck's repair); returns their names."""
    removed: list[str] = []
    last = ""
    while True:
        async with db.transaction() as conn:
            rows = list(await conn.execute_fetchall(_PAGE_OF_REPOSITORIES, (last, before, _PAGE)))
            if not rows:
                return removed
            last = str(rows[-1][1])
            owned = await owners.owned([str(row[1]) for row in rows])
            dead = [row for row in rows if row[1] not in owned]
            # Tags, manifests, their references and blob links go with it (ON DELETE CASCADE).
            await conn.executemany("DELETE FROM repositories WHERE id = ?", [(r[0],) for r in dead])
        removed += [str(row[1]) for row in dead]


_DUE = (
    "SELECT q.repository_id, q.review_after, r.name, r.created_at FROM gc_repository_review q"
    " LEFT JOIN repositories r ON r.id = q.repository_id"
    " WHERE q.review_after < ? AND (q.review_after, q.repository_id) > (?, ?)"
    " ORDER BY q.review_after, q.repository_id LIMIT ?"
)


async def collect_orphans(
    db: Database, owners: RepositoryOwners, cutoff: float, dry_run: bool = False
) -> list[str]:
    """Review the queued repositories due at `cutoff`: delete the orphans among them (or, dry,
    only name them). A repository that is gone or owned leaves the queue (whatever ends its
    ownership queues it again); a young one waits until its grace period is over."""
    claim = " FOR UPDATE OF q SKIP LOCKED" if db.dialect == "postgresql" else ""
    after: tuple[float, int] = (-1.0, -1)
    removed: list[str] = []
    while True:
        if dry_run:
            rows: list[Row] = await db.fetchall(_DUE, (cutoff, *after, _PAGE))
            if not rows:
                return removed
            removed += await _orphans_among(owners, rows, cutoff)
        else:
            async with db.transaction() as conn:
                rows = list(await conn.execute_fetchall(_DUE + claim, (cutoff, *after, _PAGE)))
                if not rows:
                    return removed
                dead = await _orphans_among(owners, rows, cutoff)
                young = [
                    (float(r["created_at"]), int(r["repository_id"]))
                    for r in rows
                    if r["name"] is not None and float(r["created_at"]) >= cutoff
                ]
                # Tags, manifests, their references and blob links go with it (ON DELETE
                # CASCADE); their triggers queue the blobs and manifests.
                await conn.executemany(
                    "DELETE FROM repositories WHERE name = ?", [(n,) for n in dead]
                )
                waiting = {repository_id for _, repository_id in young}
                await conn.executemany(
                    "DELETE FROM gc_repository_review WHERE repository_id = ?",
                    [(int(r["repository_id"]),) for r in rows if r["repository_id"] not in waiting],
                )
                await conn.executemany(
                    "UPDATE gc_repository_review SET review_after = ? WHERE repository_id = ?",
                    young,
                )
            removed += dead
        last = rows[-1]
        after = (float(last["review_after"]), int(last["repository_id"]))


async def _orphans_among(owners: RepositoryOwners, rows: list[Row], cutoff: float) -> list[str]:
    old = [
        str(r["name"]) for r in rows if r["name"] is not None and float(r["created_at"]) < cutoff
    ]
    owned = await owners.owned(old) if old else set()
    return [name for name in old if name not in owned]
