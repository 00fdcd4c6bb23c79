"""The registry view: a signed-in account's plain repositories (those of its namespace, pushed
with docker, oras, ...; an admin sees every plain one), their tags with digest, size, platforms
and push time, and tag deletion for those who may delete.

Image repositories are left out: they are shown and deleted as images.
"""

from __future__ import annotations

from aiohttp import web

from metadata.errors import Forbidden, NotFound
from metadata.images import images_for_repositories
from metadata.permissions import owns_namespace
from metadata.records import Account
from metadata.web.listing import PAGE_SIZE
from metadata.web.visits import Visit, see_other
from registry.errors import RegistryError
from registry.names import check_name
from storage.browse import repositories_in_namespace, tag_records
from storage.quotas import Usage
from storage.repositories import RepositoryFrozen


async def repositories(visit: Visit) -> web.Response:
    viewer = visit.require_viewer()
    page = visit.page_number()
    db = visit.ctx.db
    names = await repositories_in_namespace(
        db, None if viewer.admin else viewer.name, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE
    )
    images = await images_for_repositories(db, names)
    shown = [name for name in names[:PAGE_SIZE] if name not in images]
    return visit.render(
        "registry.html", title="Registry", repositories=shown, page=page,
        has_next=len(names) > PAGE_SIZE, usages=await _usages(visit, viewer),
    )  # fmt: skip


async def _usages(visit: Visit, viewer: Account) -> list[Usage]:
    """Storage used against the quota: one's own, or every account's for an admin."""
    quotas = visit.ctx.registry.repositories.quotas
    if quotas is None:
        return []
    if viewer.admin:
        return await quotas.usages()
    own = await quotas.usage(viewer.name)
    return [own] if own is not None else []


async def _plain_repository(visit: Visit, viewer: Account, name: str) -> str:
    """`name` if it is a plain repository the viewer may see (and so delete in), else 404."""
    try:
        check_name(name)
    except RegistryError:
        raise NotFound(f"repository {name!r} not found") from None
    if not (viewer.admin or owns_namespace(viewer, name)):
        raise NotFound(f"repository {name!r} not found")
    if await images_for_repositories(visit.ctx.db, [name]):
        raise NotFound(f"repository {name!r} not found")
    if not await visit.ctx.registry.repositories.exists(name):
        raise NotFound(f"repository {name!r} not found")
    return name


async def repository(visit: Visit) -> web.Response:
    viewer = visit.require_viewer()
    name = await _plain_repository(visit, viewer, visit.request.match_info["name"])
    page = visit.page_number()
    records = await tag_records(visit.ctx.db, name, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
    tags = []
    for record in records[:PAGE_SIZE]:
        contents = await visit.ctx.contents.contents(name, record.digest)
        tags.append((record, contents))
    return visit.render(
        "repository.html", title=name, repository=name, tags=tags, page=page,
        has_next=len(records) > PAGE_SIZE,
    )  # fmt: skip


async def delete_tag(visit: Visit) -> web.StreamResponse:
    viewer = visit.require_viewer()
    name = await _plain_repository(visit, viewer, visit.field("repository"))
    tag = visit.field("tag")
    try:
        deleted = await visit.ctx.registry.repositories.delete_tag(name, tag)
    except RepositoryFrozen:
        raise Forbidden(f"repository {name} is read-only") from None
    if not deleted:
        raise NotFound(f"tag {tag!r} not found in {name}")
    await visit.ctx.registry.changed()
    return see_other(f"/registry/{name}")
