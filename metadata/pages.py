"""The web pages: `/` lists images, `/im/<id>` shows one.

These pages need no login: they show every image to anyone who can reach the server. That is
deliberate for a laptop or team server (beakerd binds 127.0.0.1 by default); put a server that
listens more widely behind something that authenticates if image names are secret.

Everything printed is escaped; the narrative is markdown rendered with raw HTML disabled (so
HTML in it comes out as text), once and off the event loop (metadata/narratives.py), and the
Content-Security-Policy forbids scripts and remote content in any case. No page may be framed
by another site (CSP `frame-ancestors`, and X-Frame-Options for older browsers), and no page
sends a Referer onwards.
"""

from __future__ import annotations

import html

from aiohttp import web

from metadata.context import METADATA, MetadataContext
from metadata.ids import rfc3339
from metadata.images import find_image, list_images, manifest_layers, narrative_html
from metadata.models import image_tag
from metadata.records import Image
from storage.sizes import human_bytes

CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
# Every page, the 404 included: no framing (clickjacking), no Referer leaking image IDs.
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
INDEX_PAGE = 100

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #ddd; }
th.num, td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
code, pre { background: #f4f4f4; padding: .1rem .3rem; }
code { overflow-wrap: anywhere; }
pre { padding: .6rem; overflow-x: auto; }
.narrative { border-top: 1px solid #ddd; margin-top: 1.5rem; }
.narrative h1 { font-size: 1.6rem; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def human_size(size: int | None) -> str:
    return "-" if size is None else human_bytes(size)


def _page(title: str, body: str, status: int = 200) -> web.Response:
    document = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )
    return web.Response(
        text=document, status=status, content_type="text/html",
        headers=PAGE_HEADERS,
    )  # fmt: skip


def _display_name(image: Image) -> str:
    return image.full_name or image.id


def _author(image: Image) -> str:
    author = image.author
    if not author.display_name or author.display_name == author.name:
        return _e(author.name)
    return f"{_e(author.display_name)} (<code>{_e(author.name)}</code>)"


def _shown(ctx: MetadataContext, image: Image) -> bool:
    return ctx.pages_show_private or image.workspace.public


def _page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) < 1_000_000 else 1


async def index(request: web.Request) -> web.Response:
    ctx = request.app[METADATA]
    page = _page_number(request)
    found = await list_images(
        ctx.db, None, field="created", descending=True,
        offset=(page - 1) * INDEX_PAGE, limit=INDEX_PAGE + 1,
        public_only=not ctx.pages_show_private,
    )  # fmt: skip
    images = found[:INDEX_PAGE]
    rows = "".join(
        f'<tr><td><a href="/im/{_e(image.id)}">{_e(_display_name(image))}</a></td>'
        f"<td><code>{_e(image.id)}</code></td>"
        f"<td class=num>{_e(human_size(image.size))}</td>"
        f"<td>{_e(rfc3339(image.created))}</td></tr>"
        for image in images
    )
    body = "<h1>Beaker images</h1>" + (
        "<table><thead><tr><th>Name</th><th>ID</th><th class=num>Size</th><th>Created</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
        if images
        else "<p>No images yet. Create one with <code>beaker image create</code>.</p>"
    )
    links = []
    if page > 1:
        links.append(f'<a href="/?page={page - 1}">Newer images</a>')
    if len(found) > INDEX_PAGE:
        links.append(f'<a href="/?page={page + 1}">Older images</a>')
    if links:
        body += "<p>" + " · ".join(links) + "</p>"
    return _page("Beaker images", body + await _storage_table(ctx))


async def _storage_table(ctx: MetadataContext) -> str:
    """Each account's storage against its quota, on a page only this machine sees."""
    quotas = ctx.registry.repositories.quotas
    if not ctx.pages_show_private or quotas is None:
        return ""
    rows = "".join(
        f"<tr><td>{_e(usage.account)}</td><td class=num>{_e(human_bytes(usage.used))}</td>"
        f"<td class=num>{_e('unlimited' if usage.limit is None else human_bytes(usage.limit))}"
        "</td></tr>"
        for usage in await quotas.usages()
    )
    return (
        "<h2>Storage</h2><table><thead><tr><th>Account</th><th class=num>Used</th>"
        f"<th class=num>Quota</th></tr></thead><tbody>{rows}</tbody></table>"
    )


async def image_page(request: web.Request) -> web.Response:
    ctx = request.app[METADATA]
    image_id = request.match_info["image_id"]
    # IDs only: full names contain a slash and the route takes one segment.
    image = await find_image(ctx.db, image_id) if "/" not in image_id else None
    if image is None or not _shown(ctx, image):
        return _page("Not found", f"<h1>No image {_e(image_id)}</h1>", status=404)
    tag = image_tag(ctx.registry_address, image.repository)
    beaker_ref = image.full_name or image.id
    facts = [
        ("ID", f"<code>{_e(image.id)}</code>"),
        ("Author", _author(image)),
        ("Workspace", _e(image.workspace.full_name)),
        ("Created", _e(rfc3339(image.created))),
        ("Committed", _e(rfc3339(image.committed)) if image.committed else "not yet"),
        ("Original tag", _e(image.original_tag) if image.original_tag else "-"),
        ("Digest", f"<code>{_e(image.digest)}</code>" if image.digest else "-"),
        ("Size", _e(human_size(image.size))),
    ]
    if image.description:
        facts.insert(1, ("Description", _e(image.description)))
    body = [
        '<p><a href="/">All images</a></p>',
        f"<h1>{_e(_display_name(image))}</h1>",
        "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts) + "</table>",
        "<h2>Pull</h2>",
        f"<pre>beaker image pull {_e(beaker_ref)}\ndocker pull {_e(tag)}</pre>",
    ]
    if image.digest:
        layers = await manifest_layers(ctx.registry, image.repository, image.digest)
        if layers:
            body.append(
                "<h2>Config and layers</h2><table><thead><tr><th>Digest</th><th>Type</th>"
                "<th class=num>Size</th></tr></thead><tbody>"
            )
            body += [
                f"<tr><td><code>{_e(layer.digest)}</code></td><td>{_e(layer.media_type)}</td>"
                f"<td class=num>{_e(human_size(layer.size))}</td></tr>"
                for layer in layers
            ]
            body.append("</tbody></table>")
    if image.narrative:
        body.append(f"<div class=narrative>{await narrative_html(ctx.db, image)}</div>")
    return _page(_display_name(image), "".join(body))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/im/{image_id}", image_page)
