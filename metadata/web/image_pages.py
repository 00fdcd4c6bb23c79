"""An image's page, and the owner's changes to it: edit (description, narrative with a preview,
rename), commit and delete (after a confirmation page).

Changes go through the domain functions the API uses (metadata/images.py), after the same
permission checks (metadata/permissions.py): a visitor who may not change an image gets 403,
one who may not read it 404, as on the API.
"""

from __future__ import annotations

from aiohttp import web
from markupsafe import Markup

from metadata.errors import Conflict, Invalid
from metadata.images import commit_image, delete_image, narrative_html, update_image
from metadata.models import image_tag
from metadata.narratives import check_narrative, render_narrative
from metadata.permissions import can_modify_image, modifiable_image, visible_image
from metadata.records import Image
from metadata.web.render import PAGE_HEADERS
from metadata.web.visits import Visit, see_other


def _image_id(visit: Visit) -> str:
    image_id = visit.request.match_info["image_id"]
    # IDs only: a full name has a slash, and the route takes one segment.
    return image_id if "/" not in image_id else ""


async def image_page(visit: Visit) -> web.Response:
    ctx = visit.ctx
    image = await visible_image(ctx.db, visit.viewer, _image_id(visit) or "-")
    contents = await ctx.contents.contents(image.repository, image.digest) if image.digest else None
    narrative = Markup(await narrative_html(ctx.db, image)) if image.narrative else None
    return visit.render(
        "image.html",
        title=image.full_name or image.id,
        image=image,
        contents=contents,
        narrative=narrative,
        docker_tag=image_tag(ctx.registry_address, image.repository),
        registry_address=ctx.registry_address,
        may_modify=visit.viewer is not None and can_modify_image(visit.viewer, image),
    )


async def _own_image(visit: Visit) -> Image:
    return await modifiable_image(visit.ctx.db, visit.require_viewer(), _image_id(visit) or "-")


def _edit_page(
    visit: Visit,
    image: Image,
    *,
    name: str,
    description: str,
    narrative: str,
    preview: str | None = None,
    problem: str | None = None,
    status: int = 200,
) -> web.Response:
    return visit.render(
        "edit.html", status=status, title=f"Edit {image.full_name or image.id}", image=image,
        name=name, description=description, narrative=narrative,
        preview=Markup(preview) if preview is not None else None, problem=problem,
    )  # fmt: skip


async def edit_form(visit: Visit) -> web.Response:
    image = await _own_image(visit)
    return _edit_page(
        visit, image, name=image.name or "", description=image.description,
        narrative=image.narrative,
    )  # fmt: skip


async def edit(visit: Visit) -> web.StreamResponse:
    """Save, or with `action=preview` show the narrative rendered without saving."""
    image = await _own_image(visit)
    name, description = visit.field("name").strip(), visit.field("description")
    narrative = visit.field("narrative").replace("\r\n", "\n")
    try:
        if visit.field("action") == "preview":
            html = await render_narrative(check_narrative(narrative))
            return _edit_page(
                visit, image, name=name, description=description, narrative=narrative,
                preview=html,
            )  # fmt: skip
        await update_image(
            visit.ctx.db, image, name=name if name and name != image.name else None,
            description=description, narrative=narrative,
        )  # fmt: skip
    except (Invalid, Conflict) as e:
        return _edit_page(
            visit, image, name=name, description=description, narrative=narrative,
            problem=e.message, status=e.status,
        )  # fmt: skip
    return see_other(f"/im/{image.id}")


async def preview(visit: Visit) -> web.Response:
    """The narrative sent, rendered and sanitized, as an HTML fragment (the edit page's script
    shows it beside the text without a reload)."""
    await _own_image(visit)
    html = await render_narrative(check_narrative(visit.field("narrative")))
    return web.Response(text=html, content_type="text/html", headers=PAGE_HEADERS)


async def commit(visit: Visit) -> web.StreamResponse:
    image = await _own_image(visit)
    await commit_image(visit.ctx.db, visit.ctx.registry, image)
    return see_other(f"/im/{image.id}")


async def delete_form(visit: Visit) -> web.Response:
    image = await _own_image(visit)
    return visit.render("delete.html", title=f"Delete {image.full_name or image.id}", image=image)


async def delete(visit: Visit) -> web.StreamResponse:
    image = await _own_image(visit)
    if visit.field("confirm") != image.id:
        return visit.error(400, "the deletion was not confirmed")
    await delete_image(visit.ctx.db, visit.ctx.registry, image)
    return see_other(f"/accounts/{image.author.name}")
