"""Repository policies: immutable tags and retention rules, per namespace or repository.

A policy names the repositories it covers with a pattern (`alice/*` for a namespace, `alice/app`
for one repository, `*` for all) and carries:
- `immutable_tags`: tag patterns (`v*`); once such a tag exists it is never moved to another
  manifest nor deleted, by a client or by retention;
- retention (storage/retention.py): among tags matching `tags`, keep the newest `keep_newest`
  and remove the others, only those older than `tags_older_than` when that is set as well;
  and remove untagged manifests older than `untagged_older_than`.

Policies come from the configuration file (fixed while the server runs) and from
`beakerd policy set` (rows of `repository_policies`, read inside each transaction that checks
them, so a rule added by the command binds the next write of any replica). Patterns take `*`
(any run of characters, `/` included) and `?` (one character) only, so they mean the same in
Python and in either database's SQL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from storage.database import Connection, Database, Dialect

_PATTERN = re.compile(r"[A-Za-z0-9._/*?:@-]{1,256}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def check_pattern(pattern: str) -> str:
    """A repository or tag pattern, or ValueError saying what is wrong with it."""
    if not _PATTERN.fullmatch(pattern):
        raise ValueError(
            f"pattern {pattern[:64]!r} may hold letters, digits, . _ / : @ - and the wildcards"
            " * and ? only"
        )
    return pattern


def parse_duration(value: str | float | int) -> float:
    """Seconds from `90`, `45s`, `30m`, `12h`, `7d` or `2w`; ValueError otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.fullmatch(str(value).strip())
        if match is None:
            raise ValueError(f"{str(value)[:32]!r} is not a duration such as 45s, 30m, 12h or 7d")
        seconds = float(match[1]) * _UNITS[match[2]]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


@dataclass(frozen=True, slots=True)
class Policy:
    repositories: str
    immutable_tags: tuple[str, ...] = ()
    tags: str = "*"
    keep_newest: int | None = None
    tags_older_than: float | None = None
    untagged_older_than: float | None = None

    def covers(self, repository: str) -> bool:
        return fnmatchcase(repository, self.repositories)

    def immutable_rule(self, tag: str) -> str | None:
        return next((p for p in self.immutable_tags if fnmatchcase(tag, p)), None)

    @property
    def retains(self) -> bool:
        """Whether retention has anything to remove under this policy."""
        return (
            self.keep_newest is not None
            or self.tags_older_than is not None
            or self.untagged_older_than is not None
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Policy:
        data: dict[str, Any] = json.loads(text)
        data["immutable_tags"] = tuple(data.get("immutable_tags", ()))
        return cls(**data)


@dataclass(frozen=True, slots=True)
class ImmutableTag:
    repository: str
    tag: str
    rule: str
    scope: str


class TagImmutable(Exception):
    """A write would move or delete a tag an immutable-tag rule protects."""

    def __init__(self, found: ImmutableTag, action: str) -> None:
        super().__init__(
            f"tag {found.tag} of {found.repository} is immutable (rule {found.rule!r} of policy"
            f" {found.scope!r}): it cannot be {action}"
        )
        self.found = found
        self.action = action


@dataclass
class Policies:
    """The configured policies and those `beakerd policy set` stored."""

    db: Database
    configured: Sequence[Policy] = field(default_factory=tuple)

    async def all(self, conn: Connection | None = None) -> list[Policy]:
        sql = "SELECT policy FROM repository_policies ORDER BY repositories"
        rows: Iterable[Any] = (
            await conn.execute_fetchall(sql) if conn is not None else await self.db.fetchall(sql)
        )
        return [*self.configured, *(Policy.from_json(str(row[0])) for row in rows)]

    async def stored(self) -> list[Policy]:
        rows = await self.db.fetchall(
            "SELECT policy FROM repository_policies ORDER BY repositories"
        )
        return [Policy.from_json(str(row[0])) for row in rows]

    async def store(self, policy: Policy) -> None:
        await self.db.execute(
            "INSERT INTO repository_policies (repositories, policy) VALUES (?, ?)"
            " ON CONFLICT (repositories) DO UPDATE SET policy = excluded.policy",
            (policy.repositories, policy.to_json()),
        )

    async def remove(self, repositories: str) -> bool:
        return (
            await self.db.execute(
                "DELETE FROM repository_policies WHERE repositories = ?", (repositories,)
            )
            > 0
        )

    async def check_tag_write(
        self, conn: Connection, repository: str, repo_id: int, tag: str, digest: str | None
    ) -> None:
        """Inside the transaction that moves (`digest`) or deletes (None) `tag`: TagImmutable
        when the tag exists, a rule protects it, and the write would change it."""
        rows = list(
            await conn.execute_fetchall(
                "SELECT digest FROM tags WHERE repository_id = ? AND name = ?", (repo_id, tag)
            )
        )
        if not rows or rows[0][0] == digest:
            return  # a new tag, or the same push again
        found = await self._protecting(conn, repository, [tag])
        if found:
            raise TagImmutable(found[0], "moved" if digest is not None else "deleted")

    async def check_manifest_delete(
        self, conn: Connection, repository: str, repo_id: int, digest: str
    ) -> None:
        """Deleting a manifest deletes its tags: refused when one of them is protected."""
        rows = await conn.execute_fetchall(
            "SELECT name FROM tags WHERE repository_id = ? AND digest = ?", (repo_id, digest)
        )
        found = await self._protecting(conn, repository, [str(row[0]) for row in rows])
        if found:
            raise TagImmutable(found[0], "deleted with its manifest")

    async def _protecting(
        self, conn: Connection, repository: str, tags: Sequence[str]
    ) -> list[ImmutableTag]:
        if not tags:
            return []
        found = []
        for policy in await self.all(conn):
            if not policy.immutable_tags or not policy.covers(repository):
                continue
            for tag in tags:
                rule = policy.immutable_rule(tag)
                if rule is not None:
                    found.append(ImmutableTag(repository, tag, rule, policy.repositories))
        return found


def glob_sql(dialect: Dialect, column: str) -> str:
    """SQL matching `column` against a `?` pattern made by `glob_parameter`."""
    return f"{column} GLOB ?" if dialect == "sqlite" else f"{column} ~ ?"


def glob_parameter(dialect: Dialect, pattern: str) -> str:
    """`pattern` (`*` and `?` wildcards) as GLOB takes it on SQLite, a regex on PostgreSQL."""
    if dialect == "sqlite":
        return pattern  # check_pattern admits no [ ], the one other GLOB syntax
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return f"^{body}$"
