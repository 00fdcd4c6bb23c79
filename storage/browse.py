"""Read-only listings for people browsing the registry (the web pages' registry view): the
repositories of a namespace, and a repository's tags with their manifests and push times."""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Database


@dataclass(frozen=True, slots=True)
class TagRecord:
    """A tag with the manifest it names and when it last moved."""

    name: str
    digest: str
    media_type: str
    updated_at: float


async def repositories_in_namespace(
    db: Database, namespace: str | None, limit: int, offset: int
) -> list[str]:
    """Repositories named `namespace` or `namespace/...` (every one for None), by name."""
    # substr() rather than LIKE: '_' in names would be a wildcard.
    where: str = ""
    params: list[str | int] = [limit, offset]
    if namespace is not None:
        where = " WHERE name = ? OR substr(name, 1, ?) = ?"
        params = [namespace, len(namespace) + 1, namespace + "/", limit, offset]
    rows = await db.fetchall(
        f"SELECT name FROM repositories{where} ORDER BY name LIMIT ? OFFSET ?", params
    )
    return [str(row["name"]) for row in rows]


async def tag_records(db: Database, repository: str, limit: int, offset: int) -> list[TagRecord]:
    """A repository's tags with their manifests, most recently pushed first."""
    rows = await db.fetchall(
        "SELECT t.name, t.digest, m.media_type, t.updated_at FROM tags t"
        " JOIN repositories r ON r.id = t.repository_id"
        " JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest"
        " WHERE r.name = ? ORDER BY t.updated_at DESC, t.name LIMIT ? OFFSET ?",
        (repository, limit, offset),
    )
    return [
        TagRecord(row["name"], row["digest"], row["media_type"], float(row["updated_at"]))
        for row in rows
    ]
