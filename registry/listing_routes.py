"""`/v2/<name>/tags/list` and `/v2/_catalog`: lexical order, `n`/`last` pages, `Link` headers."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from registry.access import PULL, require, require_catalog
from registry.context import REGISTRY
from registry.errors import ErrorCode, RegistryError
from registry.names import check_name

# Without `n` a client gets this many entries and a Link to the rest.
DEFAULT_PAGE = 1000
MAX_PAGE = 10000


def _page_size(request: web.Request) -> int:
    raw = request.query.get("n")
    if raw is None or raw == "":
        return DEFAULT_PAGE
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6 or int(raw) > MAX_PAGE:
        raise RegistryError(
            ErrorCode.UNSUPPORTED,
            f"n must be an integer from 0 to {MAX_PAGE}",
            detail={"n": raw[:32]},
            status=400,
        )
    return int(raw)


def _next_link(path: str, n: int, last: str) -> str:
    return f'<{path}?{urlencode({"n": n, "last": last})}>; rel="next"'


async def list_tags(request: web.Request) -> web.Response:
    ctx = request.app[REGISTRY]
    name = check_name(request.match_info["name"])
    await require(request, name, PULL)
    n = _page_size(request)
    tags = await ctx.repositories.list_tags(name, n + 1, request.query.get("last"))
    if tags is None:
        raise RegistryError(ErrorCode.NAME_UNKNOWN, detail={"name": name})
    headers = {}
    if len(tags) > n > 0:
        headers["Link"] = _next_link(f"/v2/{name}/tags/list", n, tags[n - 1])
    tags = tags[:n]
    return web.json_response({"name": name, "tags": tags}, headers=headers)


async def catalog(request: web.Request) -> web.Response:
    ctx = request.app[REGISTRY]
    access = await require_catalog(request)
    n = _page_size(request)
    last = request.query.get("last")
    names: list[str] = []
    more = False
    # Skip what the caller may not read, batch after batch, until this page is full.
    batch_size = max(n, 100)
    while True:
        batch = await ctx.repositories.list_repositories(batch_size + 1, last)
        readable = await access.readable(batch[:batch_size])
        room = n - len(names)
        names.extend(readable[:room])
        if len(readable) > room or (len(batch) > batch_size and len(names) == n):
            more = True
            break
        if len(batch) <= batch_size:
            break
        last = batch[batch_size - 1]
    headers = {}
    if more and names:
        headers["Link"] = _next_link("/v2/_catalog", n, names[-1])
    return web.json_response({"repositories": names}, headers=headers)
