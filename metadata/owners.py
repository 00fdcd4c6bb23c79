"""Who holds a registry repository, as storage's garbage collector and fsck ask it
(storage/orphans.py `RepositoryOwners`).

An account holds its namespace, `<account>` and `<account>/...` (the first path component is
the account's name, as in metadata/authority.py); a Beaker image holds its internal repository,
and the manifest its commit pinned there.
"""

from __future__ import annotations

from collections.abc import Sequence

from storage.database import Database

_CHUNK = 500


class BeakerRepositoryOwners:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def owned(self, names: Sequence[str]) -> set[str]:
        namespaces = await self._present(
            "SELECT name FROM accounts WHERE name IN ({})", {_namespace(n) for n in names}
        )
        images = await self._present(
            "SELECT repository FROM images WHERE repository IN ({})", set(names)
        )
        return {name for name in names if _namespace(name) in namespaces or name in images}

    async def pinned(self, manifests: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        wanted = set(manifests)
        repositories = sorted({repository for repository, _ in wanted})
        found: set[tuple[str, str]] = set()
        for start in range(0, len(repositories), _CHUNK):
            part = repositories[start : start + _CHUNK]
            rows = await self.db.fetchall(
                "SELECT repository, digest FROM images WHERE digest IS NOT NULL"
                f" AND repository IN ({','.join('?' * len(part))})",
                part,
            )
            found.update((str(row[0]), str(row[1])) for row in rows)
        return found & wanted

    async def _present(self, query: str, values: set[str]) -> set[str]:
        """Which of `values` the one-column `query` (with an IN list to fill) returns."""
        wanted = sorted(values)
        found: set[str] = set()
        for start in range(0, len(wanted), _CHUNK):
            part = wanted[start : start + _CHUNK]
            rows = await self.db.fetchall(query.format(",".join("?" * len(part))), part)
            found.update(str(row[0]) for row in rows)
        return found


def _namespace(repository: str) -> str:
    return repository.split("/", 1)[0]
