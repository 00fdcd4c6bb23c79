"""Who holds a registry repository, as storage's garbage collector and fsck ask it
(storage/orphans.py `RepositoryOwners`).

An account holds its namespace, `<account>` and `<account>/...` (the first path component is
the account's name, as in metadata/authority.py); a Beaker image holds its internal repository,
and the manifest its commit pinned there.

The same holders answer storage's quota check (storage/quotas.py `QuotaHolders`): a namespace
counts against its account, an image's repository against the image's author.
"""

from __future__ import annotations

from collections.abc import Sequence

from storage.database import Database
from storage.quotas import Holder

_CHUNK = 500


class BeakerRepositoryOwners:
    def __init__(self, db: Database, default_quota: int | None = None) -> None:
        self.db = db
        # Bytes an account without a quota of its own may hold; None: unlimited.
        self.default_quota = default_quota

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

    async def holder(self, repository: str) -> Holder | None:
        row = await self.db.fetchone(
            "SELECT a.name FROM images i JOIN accounts a ON a.id = i.author_id"
            " WHERE i.repository = ?",
            (repository,),
        )
        # The repositories are only needed to count usage against a limit.
        return await self._holder(str(row[0]) if row else _namespace(repository), limited=True)

    async def account(self, name: str) -> Holder | None:
        return await self._holder(name, limited=False)

    async def accounts(self) -> list[str]:
        return [str(row[0]) for row in await self.db.fetchall("SELECT name FROM accounts")]

    async def _holder(self, name: str, *, limited: bool) -> Holder | None:
        row = await self.db.fetchone(
            "SELECT id, name, quota_bytes FROM accounts WHERE name = ?", (name,)
        )
        if row is None:
            return None
        limit = self.default_quota if row["quota_bytes"] is None else int(row["quota_bytes"])
        if limit is None and limited:
            return Holder(str(row["name"]), None, ())
        images = await self.db.fetchall(
            "SELECT repository FROM images WHERE author_id = ?", (row["id"],)
        )
        return Holder(str(row["name"]), limit, [str(image[0]) for image in images])

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
