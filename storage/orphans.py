"""Orphan repositories: those that no account namespace and no Beaker image holds.

storage/ does not know accounts or images; the layers above do, and answer through
`RepositoryOwners`, which the composition root (beakerd/) passes in: metadata/owners.py is the
implementation. A repository is an orphan when its owners say no one holds it, e.g. one pushed
again with a stale image credential after its image was deleted, or the namespace of a deleted
account. Garbage collection removes orphans older than the grace period, with their tags,
manifests and blob links (the blobs then go by the usual rules); fsck reports them.

Ownership is asked inside the transaction that deletes: it holds the database's write lock, so
no account or image can appear between the answer and the delete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from storage.database import Database

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


async def remove_orphans(
    db: Database, owners: RepositoryOwners, before: float, dry_run: bool = False
) -> list[str]:
    """Delete the orphans created before `before`; returns their names."""
    if dry_run:
        return [orphan.name for orphan in await find_orphans(db, owners, before)]
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
