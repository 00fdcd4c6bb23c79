"""The pages for finding images: home (search and filters), workspaces, and accounts."""

from __future__ import annotations

from aiohttp import web

from metadata.accounts import get_account
from metadata.permissions import visible_workspace
from metadata.web.listing import PAGE_SIZE, image_list
from metadata.web.visits import Visit
from metadata.workspaces import image_counts, list_workspaces


async def home(visit: Visit) -> web.Response:
    listing = await image_list(visit)
    return visit.render("home.html", listing=listing, title="Images")


async def workspaces(visit: Visit) -> web.Response:
    page = visit.page_number()
    text = visit.query("q")
    found = await list_workspaces(
        visit.ctx.db, visit.viewer, None, (page - 1) * PAGE_SIZE, PAGE_SIZE + 1,
        text=text or None,
    )  # fmt: skip
    shown = found[:PAGE_SIZE]
    counts = await image_counts(visit.ctx.db, [w.id for w in shown])
    return visit.render(
        "workspaces.html", title="Workspaces", workspaces=shown, counts=counts, q=text,
        page=page, has_next=len(found) > PAGE_SIZE,
    )  # fmt: skip


async def workspace(visit: Visit) -> web.Response:
    info = visit.request.match_info
    found = await visible_workspace(visit.ctx.db, visit.viewer, f"{info['org']}/{info['name']}")
    listing = await image_list(visit, workspace=found, filters=False)
    return visit.render("workspace.html", title=found.full_name, workspace=found, listing=listing)


async def account(visit: Visit) -> web.Response:
    author = await get_account(visit.ctx.db, visit.request.match_info["name"])
    listing = await image_list(visit, author=author, filters=False)
    return visit.render("account.html", title=author.name, account=author, listing=listing)
