"""Workspaces: `<org>/<name>`, holding images."""

from __future__ import annotations

import sqlite3
from typing import Literal

from metadata.errors import Conflict, Invalid, NotFound
from metadata.ids import is_valid_name, new_id, now
from metadata.records import Account, Organization, Workspace
from storage.database import Database

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


def workspace_from_row(row: sqlite3.Row, prefix: str = "") -> Workspace:
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
    except sqlite3.IntegrityError:
        raise Conflict(f"workspace name {org.name}/{name} is already in use") from None
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
    reader: Account,
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
    """Workspaces `reader` may see (of one org, or all), by full name unless told otherwise.

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
    if not reader.admin:
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


async def update_workspace(
    db: Database,
    workspace: Workspace,
    *,
    name: str | None = None,
    description: str | None = None,
    archived: bool | None = None,
) -> Workspace:
    """Rename, re-describe and/or (un)archive; the ID and the images stay."""
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
    if sets:
        try:
            await db.execute(
                f"UPDATE workspaces SET {', '.join(sets)}, modified = ? WHERE id = ?",
                (*params, now(), workspace.id),
            )
        except sqlite3.IntegrityError:
            raise Conflict(
                f"workspace name {workspace.org.name}/{name} is already in use"
            ) from None
    return await get_workspace(db, workspace.id)
