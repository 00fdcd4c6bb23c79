"""A push its quota refused keeps nothing: what it linked goes, what it still uploads is refused.

Docker uploads an image's layers one request each, several at once, then the manifest. When the
quota refuses one of those writes (a blob upload's finish, a cross-repository mount, the
manifest), the layers before it are already linked into the repository and others are still
arriving. So once the refusing transaction has rolled back, one more transaction, under the
write lock, undoes the push in that repository:
- it unlinks the blobs that no manifest of the repository references (dangling links: what
  the push linked so far). A blob a manifest of the repository references stays linked, be it
  a layer, a config, a blob of an index's child, of a referrer or of a manifest a Beaker image
  pinned; other repositories' links are not touched. The blobs unlinked are noted
  (`refused_links`) for the grace period: to those who may push to the repository they still
  answer HEAD (never GET) while their bytes last, since docker checks each layer with a HEAD
  right after its upload, and a layer that finished just before the refusal must not turn into
  "unknown blob" in place of the quota's message. They count for nothing, and a manifest that
  names them links them again under the quota, as any blob visible there;
- it marks the repository's open upload sessions refused, with the refusal's message: a later
  chunk or finish of one answers 403 DENIED with that message (so docker shows it whichever
  layer it reports), and a finish already past that check finds the mark in the transaction
  that would link its blob (storage/repositories.py `add_blob`), so no layer of the refused
  push lands after the refusal. The marked rows expire as any session does (GC).

The blobs' rows and bytes stay: GC reclaims them as it does any unlinked blob, after the grace
period, and the notes with them. A process killed between the refusal and this transaction
leaves the dangling links; GC's link review (storage/link_review.py) removes them once older
than the grace period.
"""

from __future__ import annotations

import time

from storage.database import Connection


class PushRefused(Exception):
    """The upload session belongs to a push its account's quota refused (maps to DENIED)."""


# The repository's links that no manifest of it references.
_DANGLING = (
    "FROM repository_blobs l WHERE l.repository_id IN (SELECT id FROM repositories WHERE name = ?)"
    " AND NOT EXISTS (SELECT 1 FROM manifest_references mr"
    " WHERE mr.repository_id = l.repository_id AND mr.child_digest = l.digest"
    " AND mr.child_is_manifest = 0)"
)


async def undo_refused_push(conn: Connection, repository: str, message: str) -> None:
    """Unlink `repository`'s dangling blobs and refuse its open upload sessions with `message`,
    inside the caller's transaction."""
    now = time.time()
    await conn.execute(
        "INSERT INTO refused_links (repository_id, digest, created_at)"
        f" SELECT l.repository_id, l.digest, ? {_DANGLING}"
        " ON CONFLICT (repository_id, digest) DO UPDATE SET created_at = excluded.created_at",
        (now, repository),
    )
    await conn.execute(
        f"DELETE FROM repository_blobs WHERE (repository_id, digest) IN"
        f" (SELECT l.repository_id, l.digest {_DANGLING})",
        (repository,),
    )
    # The mark is fresh: it must outlive the clients still sending to these sessions.
    await conn.execute(
        "UPDATE uploads SET refused = ?, updated_at = ? WHERE repository = ? AND refused IS NULL",
        (message, now, repository),
    )


async def check_session(conn: Connection, session: str) -> None:
    """PushRefused if the upload session `session` was refused, inside the linking transaction."""
    rows = list(await conn.execute_fetchall("SELECT refused FROM uploads WHERE id = ?", (session,)))
    if rows and rows[0][0] is not None:
        raise PushRefused(str(rows[0][0]))
