"""Beaker images: a metadata row over an internal registry repository.

Lifecycle: create (row + a fresh repository name) -> the client pushes `:latest` with minted
credentials -> commit pins the manifest digest and makes the repository read-only -> rename or
describe at will (the ID never changes) -> delete drops the row and the repository.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

from metadata.errors import Conflict, Invalid, NotFound
from metadata.ids import is_valid_name, new_id, new_repository_name, now
from metadata.narratives import check_narrative, render_narrative
from metadata.records import Account, Image, Organization, Workspace
from metadata.workspaces import workspace_from_row
from registry.context import RegistryContext
from storage.database import Database, DatabaseError, IntegrityError, Row
from storage.repositories import create_repository, delete_repository_in, freeze_repository

log = logging.getLogger("beakerd.metadata")

LATEST = "latest"

SELECT_IMAGE = (
    "SELECT i.id, i.name, i.description, i.narrative, i.original_tag, i.repository, i.created,"
    " i.committed, i.digest, i.size,"
    " ia.id AS ia_id, ia.name AS ia_name, ia.display_name AS ia_display_name,"
    " ia.admin AS ia_admin, ia.created AS ia_created,"
    " w.id AS w_id, w.name AS w_name, w.description AS w_description, w.public AS w_public,"
    " w.archived AS w_archived, w.created AS w_created, w.modified AS w_modified,"
    " o.id AS w_o_id, o.name AS w_o_name, o.display_name AS w_o_display_name,"
    " o.description AS w_o_description, o.created AS w_o_created,"
    " wa.id AS w_a_id, wa.name AS w_a_name, wa.display_name AS w_a_display_name,"
    " wa.admin AS w_a_admin, wa.created AS w_a_created"
    " FROM images i JOIN accounts ia ON ia.id = i.author_id"
    " JOIN workspaces w ON w.id = i.workspace_id"
    " JOIN organizations o ON o.id = w.organization_id"
    " JOIN accounts wa ON wa.id = w.author_id"
)

# The API's sort fields; the web pages also sort by size and workspace.
SortField = Literal["created", "author", "name"]
ListOrder = Literal["created", "author", "name", "size", "workspace"]
# Every column NULL-free, so both engines put the same rows first (they order NULLs apart).
_ORDER_COLUMNS: dict[str, str] = {
    "created": "i.created {0}",
    "author": "ia.name {0}",
    "name": "coalesce(i.name, '') {0}",
    "size": "coalesce(i.size, -1) {0}",
    "workspace": "o.name {0}, w.name {0}",
}


def image_from_row(row: Row) -> Image:
    return Image(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        narrative=row["narrative"],
        original_tag=row["original_tag"],
        repository=row["repository"],
        created=float(row["created"]),
        committed=float(row["committed"]) if row["committed"] is not None else None,
        digest=row["digest"],
        size=int(row["size"]) if row["size"] is not None else None,
        author=Account.from_row(row, "ia_"),
        workspace=workspace_from_row(row, "w_"),
    )


def check_image_name(name: str) -> str:
    if not is_valid_name(name):
        raise Invalid(f"invalid image name {name!r}: use letters, digits, '.', '_' and '-'")
    return name


async def create_image(
    db: Database,
    author: Account,
    workspace: Workspace,
    name: str | None,
    *,
    original_tag: str = "",
    description: str = "",
    narrative: str = "",
    local_image_id: str | None = None,
) -> Image:
    if name is not None:
        check_image_name(name)
    html = await render_narrative(check_narrative(narrative))
    image_id, repository = new_id("bp"), new_repository_name()
    try:
        # The repository exists from the image's creation and goes with its deletion: pushes
        # with the image's credentials never create it (registry/access.py `may_create`).
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO images (id, name, author_id, workspace_id, description, narrative,"
                " narrative_html, original_tag, local_image_id, repository, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (image_id, name, author.id, workspace.id, description, narrative, html,
                 original_tag or name or "", local_image_id, repository, now()),
            )  # fmt: skip
            await create_repository(conn, repository)
    except IntegrityError:
        raise _name_conflict(author, name) from None
    return await get_image(db, image_id)


def _name_conflict(author: Account, name: str | None) -> Conflict:
    return Conflict(f"an image named {author.name}/{name} already exists")


async def find_image(db: Database, ref: str) -> Image | None:
    """An image by ID or full name `<author>/<name>`; a bare name matches nothing."""
    if "/" in ref:
        author, _, name = ref.partition("/")
        row = await db.fetchone(SELECT_IMAGE + " WHERE ia.name = ? AND i.name = ?", (author, name))
    else:
        row = await db.fetchone(SELECT_IMAGE + " WHERE i.id = ?", (ref,))
    return image_from_row(row) if row else None


async def get_image(db: Database, ref: str) -> Image:
    image = await find_image(db, ref)
    if image is None:
        raise NotFound(f"image {ref!r} not found")
    return image


async def image_for_repository(db: Database, repository: str) -> Image | None:
    row = await db.fetchone(SELECT_IMAGE + " WHERE i.repository = ?", (repository,))
    return image_from_row(row) if row else None


async def images_for_repositories(db: Database, repositories: list[str]) -> dict[str, Image]:
    """The images behind those of `repositories` that belong to one, by repository."""
    if not repositories:
        return {}
    marks = ",".join("?" * len(repositories))
    rows = await db.fetchall(SELECT_IMAGE + f" WHERE i.repository IN ({marks})", repositories)
    images = (image_from_row(row) for row in rows)
    return {image.repository: image for image in images}


async def list_images(
    db: Database,
    workspace: Workspace | None,
    *,
    field: ListOrder = "created",
    descending: bool = True,
    text: str | None = None,
    search: str | None = None,
    offset: int = 0,
    limit: int = 100,
    public_only: bool = False,
    author: Account | None = None,
    org: Organization | None = None,
    reader: Account | None = None,
) -> list[Image]:
    """Images of a workspace (or of all), sorted, optionally matching `text` in the name (or
    being the image `text`), or `search` in the name, description or author's name.

    `author` and `org` narrow the list further; with `reader`, only the images it may read
    (the rule of metadata/permissions.py, as SQL) are listed.
    """
    clauses: list[str] = ["w.public = 1"] if public_only else []
    params: list[Any] = []
    if workspace is not None:
        clauses.append("i.workspace_id = ?")
        params.append(workspace.id)
    if author is not None:
        clauses.append("i.author_id = ?")
        params.append(author.id)
    if org is not None:
        clauses.append("w.organization_id = ?")
        params.append(org.id)
    if reader is not None and not reader.admin:
        clauses.append(
            "(i.author_id = ? OR w.public = 1 OR EXISTS (SELECT 1 FROM organization_members m"
            " WHERE m.organization_id = w.organization_id AND m.account_id = ?))"
        )
        params += [reader.id, reader.id]
    if text:
        # instr() rather than LIKE: no wildcard characters to escape in user text.
        clauses.append("(instr(lower(coalesce(i.name, '')), lower(?)) > 0 OR i.id = ?)")
        params += [text, text]
    if search:
        clauses.append(
            "(instr(lower(coalesce(i.name, '')), lower(?)) > 0"
            " OR instr(lower(i.description), lower(?)) > 0"
            " OR instr(lower(ia.name), lower(?)) > 0"
            " OR instr(lower(ia.display_name), lower(?)) > 0)"
        )
        params += [search] * 4
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    direction = "DESC" if descending else "ASC"
    order = f" ORDER BY {_ORDER_COLUMNS[field].format(direction)}, i.id {direction}"
    # Two steps: the page's IDs from a narrow sort (the full rows, narratives and all, would
    # be carried through the sort of every match), then those rows.
    ids = await db.fetchall(
        "SELECT i.id FROM images i JOIN accounts ia ON ia.id = i.author_id"
        " JOIN workspaces w ON w.id = i.workspace_id"
        " JOIN organizations o ON o.id = w.organization_id"
        + where + order + " LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )  # fmt: skip
    page = [str(row[0]) for row in ids]
    if not page:
        return []
    marks = ",".join("?" * len(page))
    rows = await db.fetchall(SELECT_IMAGE + f" WHERE i.id IN ({marks})", page)
    found = {row["id"]: image_from_row(row) for row in rows}
    # A row deleted between the two reads is left out.
    return [found[image_id] for image_id in page if image_id in found]


async def update_image(
    db: Database,
    image: Image,
    *,
    name: str | None = None,
    description: str | None = None,
    narrative: str | None = None,
) -> Image:
    """Rename and/or re-describe; the ID and the content stay."""
    sets: list[str] = []
    params: list[Any] = []
    if name is not None:
        sets.append("name = ?")
        params.append(check_image_name(name))
    if description is not None:
        sets.append("description = ?")
        params.append(description)
    if narrative is not None:
        # Rendered before the write, and written with it: the HTML always matches the text.
        html = await render_narrative(check_narrative(narrative))
        sets.append("narrative = ?, narrative_html = ?")
        params += [narrative, html]
    if sets:
        try:
            await db.execute(
                f"UPDATE images SET {', '.join(sets)} WHERE id = ?", (*params, image.id)
            )
        except IntegrityError:
            raise _name_conflict(image.author, name) from None
    return await get_image(db, image.id)


async def narrative_html(db: Database, image: Image) -> str:
    """The narrative as HTML: as stored when it was written, else rendered now and stored (a
    row from before HTML was stored; if the narrative changed meanwhile, the newer HTML stays)."""
    row = await db.fetchone(
        "SELECT narrative, narrative_html FROM images WHERE id = ?", (image.id,)
    )
    if row is None:
        return ""
    if row["narrative_html"] is not None:
        return str(row["narrative_html"])
    html = await render_narrative(row["narrative"])
    try:
        await db.execute(
            "UPDATE images SET narrative_html = ? WHERE id = ? AND narrative = ?"
            " AND narrative_html IS NULL",
            (html, image.id, row["narrative"]),
        )
    except DatabaseError as e:
        # Storing only saves the next visit a render (the disk may be full): show the page.
        log.warning("could not store the rendered narrative of %s: %s", image.id, e)
    return html


@dataclass(frozen=True, slots=True)
class Layer:
    digest: str
    size: int
    media_type: str


async def commit_image(db: Database, registry: RegistryContext, image: Image) -> Image:
    """Pin `:latest` and make the repository read-only; committing twice changes nothing.

    One transaction reads the tag, freezes the repository and pins the digest: every write to
    the repository checks the freeze inside its own transaction (storage/repositories.py
    `writable_repository`), so a push still in flight when this commits fails rather than
    lands, and `latest` stays the pinned digest.
    """
    if image.committed is not None:
        return image
    async with db.transaction() as conn:
        digest = await freeze_repository(conn, image.repository, LATEST)
        if digest is None:
            raise Invalid(
                f"cannot commit image {image.id}: nothing was pushed to"
                f" {image.repository}:{LATEST} (did the docker push fail?)"
            )
        # The manifest behind the tag is committed and never changes: reading it beside this
        # transaction sees the same bytes.
        layers = await manifest_layers(registry, image.repository, digest)
        await conn.execute(
            "UPDATE images SET committed = ?, digest = ?, size = ?"
            " WHERE id = ? AND committed IS NULL",
            (now(), digest, sum(layer.size for layer in layers), image.id),
        )
        await registry.repositories.events.record(
            conn,
            "image_commit",
            {
                "image": image.id,
                "name": image.name,
                "author": image.author.name,
                "repository": image.repository,
                "digest": digest,
                "size": sum(layer.size for layer in layers),
            },
        )
    await registry.changed()
    return await get_image(db, image.id)


async def manifest_layers(
    registry: RegistryContext, repository: str, digest: str, depth: int = 0
) -> list[Layer]:
    """The config and layer blobs of a manifest (of every platform, for an index)."""
    record = await registry.repositories.manifest(repository, digest)
    if record is None or depth > 2:
        return []
    try:
        document = json.loads(record.content)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    if isinstance(document.get("manifests"), list):
        layers: list[Layer] = []
        for child in document["manifests"]:
            if isinstance(child, dict) and isinstance(child.get("digest"), str):
                layers += await manifest_layers(registry, repository, child["digest"], depth + 1)
        return layers
    descriptors = [document.get("config"), *(document.get("layers") or [])]
    return [
        Layer(str(d["digest"]), int(d.get("size") or 0), str(d.get("mediaType") or ""))
        for d in descriptors
        if isinstance(d, dict) and "digest" in d
    ]


async def delete_image(db: Database, registry: RegistryContext, image: Image) -> None:
    """Forget the image and its repository; the blobs are left to garbage collection."""
    async with db.transaction() as conn:
        cursor = await conn.execute("DELETE FROM images WHERE id = ?", (image.id,))
        if cursor.rowcount == 0:
            raise NotFound(f"image {image.id!r} not found")
        await delete_repository_in(conn, image.repository)
    # Stops the image's credentials at once too (registry/auth.py `_is_live`).
    await registry.changed()
