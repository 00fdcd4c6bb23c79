"""Workspaces: `<org>/<name>`, holding images.

A workspace can be renamed (its ID stays), made public or private, and archived: an archived
workspace is read-only, so it takes no new images, gives none away and keeps its name until it
is unarchived. Moving images in (`transfer_images`) is all or nothing.
"""

from __future__ import annotations

from typing import Literal

from metadata.errors import Conflict, Forbidden, Invalid, NotFound
from metadata.ids import is_valid_name, new_id, now
from metadata.records import Account, Organization, Workspace
from storage.database import Database, IntegrityError, Row

# One query shape for every read, so a Workspace always comes with its org and author.
SELECT_WORKSPACE = (
    "SELECT w.id, w.name, w.description, w.public, w.archived, w.created, w.modified,"
    " o.id AS o_id, o.name AS o_name, o.display_name AS o_display_name,"
    " o.description AS o_description, o.created AS o_created,"
    " a.id AS a_id, a.name AS a_name, a.display_name AS a_display_name,"
    " a.admin AS a_admin, a.created AS a_created"
    " FROM workspaces w JOIN organizations o ON o.id = w.organization_id"
    " JOIN accounts a ON a.id = w.author_id"
)


def workspace_from_row(row: Row, prefix: str = "") -> Workspace:
    return Workspace(
        id=row[prefix + "id"],
        name=row[prefix + "name"],
        description=row[prefix + "description"],
        public=bool(row[prefix + "public"]),
        archived=bool(row[prefix + "archived"]),
        created=float(row[prefix + "created"]),
        modified=float(row[prefix + "modified"]),
        org=Organization.from_row(row, prefix + "o_"),
        author=Account.from_row(row, prefix + "a_"),
    )


async def create_workspace(
    db: Database,
    org: Organization,
    name: str,
    author: Account,
    description: str = "",
    public: bool = False,
) -> Workspace:
    if not is_valid_name(name):
        raise Invalid(f"invalid workspace name {name!r}: use letters, digits, '.', '_' and '-'")
    workspace_id, created = new_id("ws"), now()
    try:
        await db.execute(
            "INSERT INTO workspaces (id, organization_id, name, description, author_id, public,"
            " archived, created, modified) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
            (workspace_id, org.id, name, description, author.id, int(public), created, created),
        )
    except IntegrityError:
        raise Conflict(f"a workspace named {org.name}/{name} already exists") from None
    return await get_workspace(db, workspace_id)


async def find_workspace(db: Database, ref: str) -> Workspace | None:
    """A workspace by ID or full name `<org>/<name>`."""
    if "/" in ref:
        org_name, _, name = ref.partition("/")
        row = await db.fetchone(
            SELECT_WORKSPACE + " WHERE o.name = ? AND w.name = ?", (org_name, name)
        )
    else:
        row = await db.fetchone(SELECT_WORKSPACE + " WHERE w.id = ?", (ref,))
    return workspace_from_row(row) if row else None


async def get_workspace(db: Database, ref: str) -> Workspace:
    workspace = await find_workspace(db, ref)
    if workspace is None:
        raise NotFound(f"workspace {ref!r} not found")
    return workspace


WorkspaceOrder = Literal["full_name", "name", "created"]
_WORKSPACE_ORDER: dict[str, str] = {
    "full_name": "o.name {0}, w.name {0}",
    "name": "w.name {0}, o.name {0}",
    "created": "w.created {0}, w.id {0}",
}


async def list_workspaces(
    db: Database,
    reader: Account | None,
    org: Organization | None,
    offset: int,
    limit: int,
    *,
    author: Account | None = None,
    archived: bool | None = None,
    text: str | None = None,
    order: WorkspaceOrder = "full_name",
    descending: bool = False,
) -> list[Workspace]:
    """Workspaces `reader` may see (of one org, or all), by full name unless told otherwise;
    without a reader (an anonymous visitor of the web pages), the public ones.

    `author`, `archived` and `text` (in the name or description) narrow the list.
    """
    clauses: list[str] = []
    params: list[str | int] = []
    if org is not None:
        clauses.append("o.id = ?")
        params.append(org.id)
    if author is not None:
        clauses.append("w.author_id = ?")
        params.append(author.id)
    if archived is not None:
        clauses.append("w.archived = ?")
        params.append(int(archived))
    if text:
        # instr() rather than LIKE: no wildcard characters to escape in user text.
        clauses.append(
            "(instr(lower(w.name), lower(?)) > 0 OR instr(lower(w.description), lower(?)) > 0)"
        )
        params += [text, text]
    if reader is None:
        clauses.append("w.public = 1")
    elif not reader.admin:
        clauses.append(
            "(w.public = 1 OR EXISTS (SELECT 1 FROM organization_members m"
            " WHERE m.organization_id = w.organization_id AND m.account_id = ?))"
        )
        params.append(reader.id)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = await db.fetchall(
        SELECT_WORKSPACE
        + where
        + " ORDER BY "
        + _WORKSPACE_ORDER[order].format("DESC" if descending else "ASC")
        + " LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    return [workspace_from_row(row) for row in rows]


async def image_count(db: Database, workspace_id: str) -> int:
    row = await db.fetchone("SELECT count(*) FROM images WHERE workspace_id = ?", (workspace_id,))
    return int(row[0]) if row else 0


async def image_counts(db: Database, workspace_ids: list[str]) -> dict[str, int]:
    """How many images each of the workspaces holds, in one query (a page of workspaces)."""
    if not workspace_ids:
        return {}
    marks = ",".join("?" * len(workspace_ids))
    rows = await db.fetchall(
        f"SELECT workspace_id, count(*) FROM images WHERE workspace_id IN ({marks})"
        " GROUP BY workspace_id",
        workspace_ids,
    )
    counts = {str(row[0]): int(row[1]) for row in rows}
    return {workspace_id: counts.get(workspace_id, 0) for workspace_id in workspace_ids}


async def update_workspace(
    db: Database,
    workspace: Workspace,
    *,
    name: str | None = None,
    description: str | None = None,
    archived: bool | None = None,
    public: bool | None = None,
) -> Workspace:
    """Rename, re-describe, (un)archive or change visibility; the ID stays.

    An archived workspace is read-only: only unarchiving (and visibility) may change it, and the
    check is part of the UPDATE, so a concurrent archive cannot slip a rename through.
    """
    sets: list[str] = []
    params: list[str | int | float] = []
    if name is not None:
        if not is_valid_name(name):
            raise Invalid(f"invalid workspace name {name!r}: use letters, digits, '.', '_' and '-'")
        sets.append("name = ?")
        params.append(name)
    if description is not None:
        sets.append("description = ?")
        params.append(description)
    if archived is not None:
        sets.append("archived = ?")
        params.append(int(archived))
    if public is not None:
        sets.append("public = ?")
        params.append(int(public))
    if not sets:
        return workspace
    guard = ""
    if name is not None or description is not None:
        # Unarchiving in the same patch lifts the read-only rule for it.
        guard = "" if archived is False else " AND archived = 0"
    try:
        changed = await db.execute(
            f"UPDATE workspaces SET {', '.join(sets)}, modified = ? WHERE id = ?{guard}",
            (*params, now(), workspace.id),
        )
    except IntegrityError:
        raise Conflict(f"a workspace named {workspace.org.name}/{name} already exists") from None
    if changed == 0:
        current = await get_workspace(db, workspace.id)
        if current.archived:
            raise Forbidden(f"workspace {current.full_name} is archived (unarchive it first)")
    return await get_workspace(db, workspace.id)


async def transfer_images(db: Database, workspace: Workspace, image_ids: list[str]) -> int:
    """Move images into `workspace`, all or none; returns how many moved.

    Neither the target nor any source workspace may be archived: that is checked in the
    transaction that moves, so an archive that lands first wins.
    """
    if not image_ids:
        return 0
    marks = ",".join("?" * len(image_ids))
    async with db.transaction() as conn:
        target = await conn.execute_fetchall(
            "SELECT archived FROM workspaces WHERE id = ?", (workspace.id,)
        )
        rows = list(target)
        if not rows:
            raise NotFound(f"workspace {workspace.id!r} not found")
        if rows[0][0]:
            raise Forbidden(f"workspace {workspace.full_name} is archived")
        archived_sources = await conn.execute_fetchall(
            "SELECT i.id FROM images i JOIN workspaces w ON w.id = i.workspace_id"
            f" WHERE i.id IN ({marks}) AND w.archived = 1",
            image_ids,
        )
        stuck = [row[0] for row in archived_sources]
        if stuck:
            raise Forbidden(f"image {stuck[0]} is in an archived workspace")
        cursor = await conn.execute(
            f"UPDATE images SET workspace_id = ? WHERE id IN ({marks})",
            (workspace.id, *image_ids),
        )
        moved = cursor.rowcount
        await conn.execute("UPDATE workspaces SET modified = ? WHERE id = ?", (now(), workspace.id))
    return moved
