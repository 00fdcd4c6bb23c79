"""The pull-through cache's rows: what was fetched from an upstream, when it was last confirmed
there and when a client last pulled it.

Cached repositories hold ordinary manifests, tags and blob links, so reads and garbage
collection treat them like any other; `pull_cache` adds, per tag and manifest digest, the two
times the cache needs. A cached manifest is stored without its blobs (they are fetched when a
client asks for them, and only for the platforms it asks for), so nothing here requires them.

Aging out: an entry no client pulled for the expiry period loses its tag or its manifest; the
blobs then go by the garbage collector's usual rules.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from storage.database import Connection, Database
from storage.repositories import NewManifest, insert_manifest, writable_repository


@dataclass(frozen=True, slots=True)
class CacheEntry:
    digest: str
    checked_at: float
    used_at: float


class PullCache:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def entry(self, repository: str, reference: str) -> CacheEntry | None:
        row = await self.db.fetchone(
            "SELECT p.digest, p.checked_at, p.used_at FROM pull_cache p"
            " JOIN repositories r ON r.id = p.repository_id"
            " WHERE r.name = ? AND p.reference = ?",
            (repository, reference),
        )
        if row is None:
            return None
        return CacheEntry(str(row["digest"]), float(row["checked_at"]), float(row["used_at"]))

    async def store_manifest(self, repository: str, manifest: NewManifest, tag: str | None) -> None:
        """Store a manifest fetched from the upstream (and the tag it was fetched by), with its
        entries, creating the repository on first fetch."""
        async with self.db.transaction() as conn:
            now = time.time()
            repo_id = await writable_repository(conn, repository, create=True)
            await insert_manifest(conn, repo_id, manifest, tag, now)
            for reference in (manifest.digest, tag):
                if reference is not None:
                    await _upsert_entry(conn, repo_id, reference, manifest.digest, now)

    async def confirm(self, repository: str, tag: str, digest: str) -> None:
        """The upstream still has `tag` at `digest`: trust it for another TTL."""
        now = time.time()
        await self.db.execute(
            "UPDATE pull_cache SET checked_at = ? WHERE reference = ?"
            " AND repository_id = (SELECT id FROM repositories WHERE name = ?)",
            (now, tag, repository),
        )
        await self.touch(repository, tag, digest)

    async def touch(self, repository: str, *references: str) -> None:
        """A client pulled these (a tag and the manifest it names, say): they stay cached.

        A tag's manifest is touched with it, or ageing out would take the manifest, and the
        tag with it, from under a tag in use.
        """
        marks = ",".join("?" * len(references))
        await self.db.execute(
            f"UPDATE pull_cache SET used_at = ? WHERE reference IN ({marks})"
            " AND repository_id = (SELECT id FROM repositories WHERE name = ?)",
            (time.time(), *references, repository),
        )

    async def link_referenced_blob(self, repository: str, digest: str) -> int | None:
        """Link a blob already stored (fetched for another cached repository) into `repository`
        when one of its cached manifests references it; its size, or None.

        The reference is what makes this safe: the cached manifest came from the upstream, so
        the upstream serves that blob under this name; a blob stored for anyone else's private
        repository is never exposed by naming its digest here.
        """
        async with self.db.transaction() as conn:
            rows = list(
                await conn.execute_fetchall(
                    "SELECT r.id, b.size FROM repositories r"
                    " JOIN manifest_references m ON m.repository_id = r.id"
                    " JOIN blobs b ON b.digest = m.child_digest"
                    " WHERE r.name = ? AND m.child_digest = ? AND m.child_is_manifest = 0"
                    " LIMIT 1",
                    (repository, digest),
                )
            )
            if not rows:
                return None
            await conn.execute(
                "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (repository_id, digest) DO UPDATE"
                " SET created_at = excluded.created_at",
                (int(rows[0][0]), digest, time.time()),
            )
            return int(rows[0][1])

    async def expire(self, unused_since: float) -> int:
        """Drop the tags and manifests no client pulled since `unused_since`; how many."""
        async with self.db.transaction() as conn:
            rows = list(
                await conn.execute_fetchall(
                    "SELECT repository_id, reference, digest FROM pull_cache WHERE used_at < ?",
                    (unused_since,),
                )
            )
            for repo_id, reference, digest in rows:
                if reference == digest:
                    # Its tags and references go with it (ON DELETE CASCADE).
                    await conn.execute(
                        "DELETE FROM manifests WHERE repository_id = ? AND digest = ?",
                        (repo_id, digest),
                    )
                else:
                    await conn.execute(
                        "DELETE FROM tags WHERE repository_id = ? AND name = ?",
                        (repo_id, reference),
                    )
                await conn.execute(
                    "DELETE FROM pull_cache WHERE repository_id = ? AND reference = ?",
                    (repo_id, reference),
                )
        return len(rows)


async def _upsert_entry(
    conn: Connection, repo_id: int, reference: str, digest: str, now: float
) -> None:
    await conn.execute(
        "INSERT INTO pull_cache (repository_id, reference, digest, checked_at, used_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (repository_id, reference) DO UPDATE"
        " SET digest = excluded.digest, checked_at = excluded.checked_at,"
        " used_at = excluded.used_at",
        (repo_id, reference, digest, now, now),
    )
