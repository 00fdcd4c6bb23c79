"""Queries over repositories, their blob links, manifests, tags and referrers.

Every write that changes what a client can see happens in one transaction, so a reader sees a
manifest together with its tag and blob links, or none of them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from storage.database import Connection, Database, Row
from storage.outbox import Outbox
from storage.policies import Policies
from storage.quotas import QuotaExceeded, Quotas
from storage.refused_pushes import PushRefused, check_session, undo_refused_push

log = logging.getLogger("beakerd.quotas")


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    digest: str
    media_type: str
    size: int
    content: bytes


@dataclass(frozen=True, slots=True)
class ReferrerRecord:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class NewManifest:
    """A validated manifest ready to be stored, with everything it points at."""

    digest: str
    media_type: str
    content: bytes
    artifact_type: str | None
    subject: str | None
    annotations: dict[str, str] | None
    blob_digests: Sequence[str]
    manifest_digests: Sequence[str]


class RepositoryFrozen(Exception):
    """The repository belongs to a committed Beaker image: it takes no more writes."""

    def __init__(self, name: str) -> None:
        super().__init__(f"repository {name} is read-only")
        self.name = name


class RepositoryUnknown(LookupError):
    """The write names a repository that does not exist and the caller may not create."""

    def __init__(self, name: str) -> None:
        super().__init__(f"repository {name} does not exist")
        self.name = name


class MissingBlobs(LookupError):
    """A manifest names blobs that are no longer stored (garbage collected since the client
    checked them); the client must push them again. Maps to MANIFEST_BLOB_UNKNOWN."""

    def __init__(self, digests: Sequence[str]) -> None:
        super().__init__(f"blobs not stored: {', '.join(digests)}")
        self.digests = list(digests)


class Repositories:
    def __init__(
        self,
        db: Database,
        *,
        policies: Policies | None = None,
        quotas: Quotas | None = None,
        events: Outbox | None = None,
    ) -> None:
        self.db = db
        # Checked inside the transactions that write tags (immutable tags) and link blobs
        # (quotas); events are queued in the transactions of the changes they report.
        self.policies = policies or Policies(db)
        self.quotas = quotas
        self.events = events or Outbox(db)

    # -- repositories -----------------------------------------------------------------------

    async def exists(self, name: str) -> bool:
        row = await self.db.fetchone("SELECT 1 FROM repositories WHERE name = ?", (name,))
        return row is not None

    async def is_immutable(self, name: str) -> bool:
        row = await self.db.fetchone("SELECT immutable FROM repositories WHERE name = ?", (name,))
        return bool(row and row["immutable"])

    async def delete_repository(self, name: str) -> None:
        """Forget a repository: its tags, manifests and links (the blobs stay for GC)."""
        async with self.db.transaction() as conn:
            await delete_repository_in(conn, name)

    async def list_repositories(self, limit: int, last: str | None) -> list[str]:
        """Names of repositories holding at least one manifest, in lexical order after `last`."""
        rows = await self.db.fetchall(
            "SELECT name FROM repositories r WHERE name > ? AND EXISTS"
            " (SELECT 1 FROM manifests m WHERE m.repository_id = r.id)"
            " ORDER BY name LIMIT ?",
            (last or "", limit),
        )
        return [row["name"] for row in rows]

    # -- blobs ------------------------------------------------------------------------------

    async def blob_size(self, digest: str) -> int | None:
        """The size of a stored blob, whichever repository holds it."""
        row = await self.db.fetchone("SELECT size FROM blobs WHERE digest = ?", (digest,))
        return int(row["size"]) if row else None

    async def linked_blob_size(self, repository: str, digest: str) -> int | None:
        row = await self.db.fetchone(
            "SELECT b.size FROM blobs b JOIN repository_blobs l ON l.digest = b.digest"
            " JOIN repositories r ON r.id = l.repository_id WHERE r.name = ? AND b.digest = ?",
            (repository, digest),
        )
        return int(row["size"]) if row else None

    async def refused_blob_size(self, repository: str, digest: str) -> int | None:
        """The size of a stored blob a refused push had linked into `repository` within the
        grace period (storage/refused_pushes.py), None for any other."""
        row = await self.db.fetchone(
            "SELECT b.size FROM blobs b JOIN refused_links f ON f.digest = b.digest"
            " JOIN repositories r ON r.id = f.repository_id WHERE r.name = ? AND b.digest = ?",
            (repository, digest),
        )
        return int(row["size"]) if row else None

    async def repositories_with_blob(self, digest: str) -> list[str]:
        rows = await self.db.fetchall(
            "SELECT r.name FROM repository_blobs l JOIN repositories r ON r.id = l.repository_id"
            " WHERE l.digest = ? ORDER BY r.name",
            (digest,),
        )
        return [row["name"] for row in rows]

    async def add_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        *,
        create: bool = True,
        session: str | None = None,
        object_key: str | None = None,
    ) -> None:
        """Record a blob now in the store and link it into `repository`.

        The blob's row is committed even when the repository refuses the link (frozen since the
        upload began, gone, its account out of quota, or `session`, the upload that brought
        it, refused with the rest of its push): the bytes in place then have their row, and GC
        collects them later. `object_key` names the S3 object holding the blob when it is not
        at its content address; a row already there keeps the object it names.
        """
        refusal: Exception | None = None
        async with self._quota_refusal(repository):
            async with self.db.transaction() as conn:
                now = time.time()
                await conn.execute(
                    "INSERT INTO blobs (digest, size, created_at, object_key) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (digest) DO NOTHING",
                    (digest, size, now, object_key),
                )
                try:
                    repo_id = await writable_repository(conn, repository, create=create)
                    if session is not None:
                        await check_session(conn, session)
                    await self._check_quota(conn, repository, [digest])
                except (RepositoryFrozen, RepositoryUnknown, PushRefused, QuotaExceeded) as e:
                    refusal = e
                else:
                    await _link_blobs(conn, repo_id, [digest], now)
            if refusal is not None:
                raise refusal

    async def link_blob(self, repository: str, digest: str, *, create: bool = True) -> None:
        """Link a stored blob into `repository`; MissingBlobs if GC took it meanwhile."""
        async with self._quota_refusal(repository), self.db.transaction() as conn:
            stored = await conn.execute_fetchall("SELECT 1 FROM blobs WHERE digest = ?", (digest,))
            if not stored:
                raise MissingBlobs([digest])
            repo_id = await writable_repository(conn, repository, create=create)
            await self._check_quota(conn, repository, [digest])
            await _link_blobs(conn, repo_id, [digest], time.time())

    async def unlink_blob(self, repository: str, digest: str) -> bool:
        async with self.db.transaction() as conn:
            repo_id = await _existing_writable(conn, repository)
            if repo_id is None:
                return False
            cursor = await conn.execute(
                "DELETE FROM repository_blobs WHERE digest = ? AND repository_id = ?",
                (digest, repo_id),
            )
            return cursor.rowcount > 0

    # -- manifests and tags -----------------------------------------------------------------

    async def put_manifest(
        self, repository: str, manifest: NewManifest, tag: str | None, *, create: bool = True
    ) -> None:
        """Store a manifest, link every blob it references, and point `tag` at it."""
        async with self._quota_refusal(repository), self.db.transaction() as conn:
            now = time.time()
            # Checked inside the transaction that adds the references: garbage collection
            # deletes rows in a transaction too, so either it ran first (and the client hears
            # the blob is gone) or it sees these references and keeps the blobs. The same
            # holds for a commit freezing the repository while the body was arriving.
            repo_id = await writable_repository(conn, repository, create=create)
            await _require_blobs(conn, manifest.blob_digests)
            await self._check_quota(conn, repository, manifest.blob_digests)
            if tag is not None:
                await self.policies.check_tag_write(conn, repository, repo_id, tag, manifest.digest)
            await insert_manifest(conn, repo_id, manifest, tag, now)
            await _link_blobs(conn, repo_id, manifest.blob_digests, now)
            await self.events.record(
                conn,
                "push",
                {
                    "repository": repository,
                    "digest": manifest.digest,
                    "tag": tag,
                    "media_type": manifest.media_type,
                    "size": len(manifest.content),
                },
            )

    async def pulled(self, repository: str, digest: str, tag: str | None) -> None:
        """A client fetched a manifest: a `pull` event, when a webhook asks for those (a
        write per pull, so only then)."""
        if self.events.wants("pull"):
            await self.events.record_alone(
                "pull", {"repository": repository, "digest": digest, "tag": tag}
            )

    async def _check_quota(self, conn: Connection, repository: str, digests: Sequence[str]) -> None:
        if self.quotas is not None:
            await self.quotas.check(conn, repository, digests)

    @contextlib.asynccontextmanager
    async def _quota_refusal(self, repository: str) -> AsyncIterator[None]:
        """Once a quota refusal's transaction has rolled back: undo the rest of its push
        (storage/refused_pushes.py) and queue a quota_exceeded event, in one transaction."""
        try:
            yield
        except QuotaExceeded as e:
            try:
                async with self.db.transaction() as conn:
                    await undo_refused_push(conn, repository, str(e))
                    await self.events.record(conn, "quota_exceeded", _quota_event(repository, e))
            except Exception:
                # The client hears the refusal all the same; GC removes the links left.
                log.exception("undoing the push refused in %s failed", repository)
            raise

    async def manifest(self, repository: str, digest: str) -> ManifestRecord | None:
        row = await self.db.fetchone(
            "SELECT m.digest, m.media_type, m.size, c.content FROM manifests m"
            " JOIN repositories r ON r.id = m.repository_id"
            " JOIN manifest_contents c ON c.digest = m.digest"
            " WHERE r.name = ? AND m.digest = ?",
            (repository, digest),
        )
        return _manifest_record(row) if row else None

    async def present_manifests(self, repository: str, digests: Sequence[str]) -> set[str]:
        """Which of `digests` are manifests stored in `repository`."""
        if not digests:
            return set()
        marks = ",".join("?" * len(digests))
        rows = await self.db.fetchall(
            "SELECT m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id"
            f" WHERE r.name = ? AND m.digest IN ({marks})",
            (repository, *digests),
        )
        return {row["digest"] for row in rows}

    async def resolve_tag(self, repository: str, tag: str) -> str | None:
        row = await self.db.fetchone(
            "SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id"
            " WHERE r.name = ? AND t.name = ?",
            (repository, tag),
        )
        return str(row["digest"]) if row else None

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete a manifest and every tag pointing at it."""
        async with self.db.transaction() as conn:
            repo_id = await _existing_writable(conn, repository)
            if repo_id is None:
                return False
            await self.policies.check_manifest_delete(conn, repository, repo_id, digest)
            cursor = await conn.execute(
                "DELETE FROM manifests WHERE digest = ? AND repository_id = ?", (digest, repo_id)
            )
            if cursor.rowcount > 0:
                await self.events.record(
                    conn, "delete", {"repository": repository, "digest": digest, "tag": None}
                )
            return cursor.rowcount > 0

    async def delete_tag(self, repository: str, tag: str) -> bool:
        async with self.db.transaction() as conn:
            repo_id = await _existing_writable(conn, repository)
            if repo_id is None:
                return False
            await self.policies.check_tag_write(conn, repository, repo_id, tag, None)
            cursor = await conn.execute(
                "DELETE FROM tags WHERE name = ? AND repository_id = ?", (tag, repo_id)
            )
            if cursor.rowcount > 0:
                await self.events.record(
                    conn, "delete", {"repository": repository, "digest": None, "tag": tag}
                )
            return cursor.rowcount > 0

    async def list_tags(self, repository: str, limit: int, last: str | None) -> list[str] | None:
        """Tags in lexical order after `last`, or None when the repository is unknown."""
        row = await self.db.fetchone("SELECT id FROM repositories WHERE name = ?", (repository,))
        if row is None:
            return None
        rows = await self.db.fetchall(
            "SELECT name FROM tags WHERE repository_id = ? AND name > ? ORDER BY name LIMIT ?",
            (row["id"], last or "", limit),
        )
        return [r["name"] for r in rows]

    async def referrers(self, repository: str, subject: str) -> list[ReferrerRecord]:
        rows = await self.db.fetchall(
            "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations"
            " FROM manifests m JOIN repositories r ON r.id = m.repository_id"
            " WHERE r.name = ? AND m.subject = ? ORDER BY m.created_at, m.digest",
            (repository, subject),
        )
        return [
            ReferrerRecord(
                row["digest"],
                row["media_type"],
                int(row["size"]),
                row["artifact_type"],
                json.loads(row["annotations"]) if row["annotations"] else None,
            )
            for row in rows
        ]


def _quota_event(repository: str, error: QuotaExceeded) -> dict[str, object]:
    return {
        "repository": repository,
        "account": error.account,
        "used": error.used,
        "limit": error.limit,
        "adding": error.adding,
    }


def _manifest_record(row: Row) -> ManifestRecord:
    return ManifestRecord(row["digest"], row["media_type"], int(row["size"]), bytes(row["content"]))


async def create_repository(conn: Connection, name: str) -> None:
    """Make an empty repository, inside the caller's transaction (a new Beaker image's)."""
    await conn.execute(
        "INSERT INTO repositories (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        (name, time.time()),
    )


async def insert_manifest(
    conn: Connection, repo_id: int, manifest: NewManifest, tag: str | None, now: float
) -> None:
    """Store a manifest, what it references and `tag`, inside the caller's transaction.

    Its blobs are neither checked nor linked here: a push requires them first, the pull-through
    cache fetches them only when a client asks.
    """
    await conn.execute(
        "INSERT INTO manifest_contents (digest, content) VALUES (?, ?)"
        " ON CONFLICT (digest) DO NOTHING",
        (manifest.digest, manifest.content),
    )
    await conn.execute(
        "INSERT INTO manifests (repository_id, digest, media_type, size, artifact_type,"
        " subject, annotations, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (repository_id, digest) DO NOTHING",
        (
            repo_id,
            manifest.digest,
            manifest.media_type,
            len(manifest.content),
            manifest.artifact_type,
            manifest.subject,
            json.dumps(manifest.annotations) if manifest.annotations else None,
            now,
        ),
    )
    await conn.executemany(
        "INSERT INTO manifest_references (repository_id, manifest_digest, child_digest,"
        " child_is_manifest) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [(repo_id, manifest.digest, d, 0) for d in manifest.blob_digests]
        + [(repo_id, manifest.digest, d, 1) for d in manifest.manifest_digests],
    )
    if tag is not None:
        await conn.execute(
            "INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (repository_id, name) DO UPDATE"
            " SET digest = excluded.digest, updated_at = excluded.updated_at",
            (repo_id, tag, manifest.digest, now),
        )


async def delete_repository_in(conn: Connection, name: str) -> None:
    await conn.execute("DELETE FROM repositories WHERE name = ?", (name,))


async def freeze_repository(conn: Connection, name: str, tag: str) -> str | None:
    """Make `name` read-only and return the digest `tag` names at that instant.

    Inside the caller's transaction, which holds the write lock: no write can land between the
    read of the tag and the freeze, and every later write sees the repository frozen. Returns
    None, changing nothing, when the tag does not exist.
    """
    rows = list(
        await conn.execute_fetchall(
            "SELECT r.id, t.digest FROM repositories r JOIN tags t ON t.repository_id = r.id"
            " WHERE r.name = ? AND t.name = ?",
            (name, tag),
        )
    )
    if not rows:
        return None
    await conn.execute("UPDATE repositories SET immutable = 1 WHERE id = ?", (rows[0][0],))
    return str(rows[0][1])


async def writable_repository(conn: Connection, name: str, *, create: bool) -> int:
    """The id of a repository that takes writes, made first if absent and `create` allows.

    Every write runs this inside its own transaction: a commit that froze the repository, or a
    delete that removed it, while a request was on its way is seen here, not missed.
    """
    rows = list(
        await conn.execute_fetchall(
            "SELECT id, immutable FROM repositories WHERE name = ?", (name,)
        )
    )
    if not rows:
        if not create:
            raise RepositoryUnknown(name)
        await create_repository(conn, name)
        rows = list(
            await conn.execute_fetchall(
                "SELECT id, immutable FROM repositories WHERE name = ?", (name,)
            )
        )
    repo_id, immutable = int(rows[0][0]), bool(rows[0][1])
    if immutable:
        raise RepositoryFrozen(name)
    return repo_id


async def _existing_writable(conn: Connection, name: str) -> int | None:
    """For deletes: the repository's id, None if there is none; RepositoryFrozen if frozen."""
    try:
        return await writable_repository(conn, name, create=False)
    except RepositoryUnknown:
        return None


async def _require_blobs(conn: Connection, digests: Sequence[str]) -> None:
    wanted = list(dict.fromkeys(digests))
    present: set[str] = set()
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        marks = ",".join("?" * len(part))
        rows = await conn.execute_fetchall(
            f"SELECT digest FROM blobs WHERE digest IN ({marks})", part
        )
        present.update(str(row[0]) for row in rows)
    missing = [d for d in wanted if d not in present]
    if missing:
        raise MissingBlobs(missing)


async def _link_blobs(conn: Connection, repo_id: int, digests: Sequence[str], now: float) -> None:
    # A link's time is refreshed whenever a client pushes, mounts or references the blob
    # again: the garbage collector's grace period counts from the newest of these.
    await conn.executemany(
        "INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT (repository_id, digest) DO UPDATE SET created_at = excluded.created_at",
        [(repo_id, d, now) for d in digests],
    )
