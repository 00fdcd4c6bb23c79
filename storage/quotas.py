"""Storage quotas per account: each blob counted once per account, across its repositories.

An account holds its namespace (`<account>` and `<account>/...`) and the internal repositories
of the Beaker images it authored; storage does not know accounts or images, so the layers above
answer through `QuotaHolders` (metadata/owners.py implements it). Usage is the total size of the
distinct blobs linked into any of those repositories: a layer shared by ten of one's images
counts once.

The check runs inside the transaction that links blobs (storage/repositories.py), before the
links are written, and refuses only a write that adds bytes the account does not hold yet: a
manifest over blobs already counted passes even above the quota, so lowering a quota never
blocks re-tagging, and deletes are never refused. A refused write rolls back whole, and so
does the push it belongs to: the layers that push already linked into the repository (links no
manifest there references) are unlinked, and the repository's open upload sessions refuse the
rest with the same message, so the account's usage is back to what it was before the push
(storage/refused_pushes.py; GC reclaims the bytes, and any dangling link a kill left behind).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from storage.database import Connection, Database, Dialect
from storage.sizes import human_bytes


@dataclass(frozen=True, slots=True)
class Holder:
    """Who a repository's bytes count against."""

    account: str
    # Bytes the account may hold; None: no quota.
    limit: int | None
    # The internal repositories of the account's Beaker images (its namespace is implied).
    image_repositories: Sequence[str]


class QuotaHolders(Protocol):
    async def holder(self, repository: str) -> Holder | None:
        """The account `repository` counts against, None when no account holds it."""
        ...

    async def account(self, name: str) -> Holder | None:
        """The account `name`, None when there is none."""
        ...

    async def accounts(self) -> list[str]:
        """Every account's name."""
        ...


class QuotaExceeded(Exception):
    def __init__(self, account: str, used: int, limit: int, adding: int) -> None:
        super().__init__(
            f"quota exceeded: {human_bytes(used)} used of {human_bytes(limit)}"
            f" (account {account}; this push adds {human_bytes(adding)})"
        )
        self.account = account
        self.used = used
        self.limit = limit
        self.adding = adding


@dataclass(frozen=True, slots=True)
class Usage:
    account: str
    used: int
    limit: int | None


# The account's repositories: its namespace, and its images' repositories (a JSON array, which
# each engine unpacks its own way, as storage/gc.py `_PINS` does).
_IMAGE_NAMES = {
    "sqlite": "SELECT value FROM json_each(?)",
    "postgresql": "SELECT jsonb_array_elements_text(CAST(? AS jsonb))",
}


def _held(dialect: Dialect) -> str:
    return (
        "SELECT l.digest FROM repository_blobs l JOIN repositories r ON r.id = l.repository_id"
        f" WHERE r.name = ? OR substr(r.name, 1, ?) = ? OR r.name IN ({_IMAGE_NAMES[dialect]})"
    )


def _held_params(holder: Holder) -> tuple[object, ...]:
    prefix = holder.account + "/"
    return (holder.account, len(prefix), prefix, json.dumps(list(holder.image_repositories)))


class Quotas:
    def __init__(self, db: Database, holders: QuotaHolders) -> None:
        self.db = db
        self.holders = holders

    async def check(self, conn: Connection, repository: str, digests: Sequence[str]) -> None:
        """QuotaExceeded if linking `digests` into `repository` takes its account past its quota.

        Inside the linking transaction, which holds the write lock: no other push of the same
        account can count the same headroom.
        """
        holder = await self.holders.holder(repository)
        if holder is None or holder.limit is None or not digests:
            return
        dialect = self.db.dialect
        wanted = json.dumps(list(dict.fromkeys(digests)))
        rows = list(
            await conn.execute_fetchall(
                "SELECT coalesce(sum(b.size), 0) FROM blobs b"
                f" WHERE b.digest IN ({_IMAGE_NAMES[dialect]})"
                f" AND b.digest NOT IN ({_held(dialect)})",
                (wanted, *_held_params(holder)),
            )
        )
        adding = int(rows[0][0])
        if adding == 0:
            return
        used = await self._used(conn, holder)
        if used + adding > holder.limit:
            raise QuotaExceeded(holder.account, used, holder.limit, adding)

    async def usage(self, account: str) -> Usage | None:
        holder = await self.holders.account(account)
        if holder is None:
            return None
        return Usage(holder.account, await self._used(None, holder), holder.limit)

    async def usages(self) -> list[Usage]:
        """Every account's usage, for `/metrics`."""
        found = []
        for name in await self.holders.accounts():
            usage = await self.usage(name)
            if usage is not None:
                found.append(usage)
        return found

    async def _used(self, conn: Connection | None, holder: Holder) -> int:
        sql = f"SELECT coalesce(sum(size), 0) FROM blobs WHERE digest IN ({_held(self.db.dialect)})"
        params = _held_params(holder)
        if conn is None:
            row = await self.db.fetchone(sql, params)
            return int(row[0]) if row else 0
        return int(next(iter(await conn.execute_fetchall(sql, params)))[0])
