"""`/v2/<name>/blobs/<digest>`: HEAD, GET (with Range) and DELETE."""

from __future__ import annotations

from aiohttp import web

from registry.access import DELETE, PULL, require
from registry.context import REGISTRY
from registry.errors import ErrorCode, RegistryError
from registry.names import check_name, parse_digest
from registry.visibility import visible_blob_size

# Blobs never change, so clients and proxies may keep them for as long as they like.
_IMMUTABLE_CACHE = "public, max-age=31536000, immutable"


def _blob_unknown(digest: str) -> RegistryError:
    return RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": digest})


async def get_blob(request: web.Request) -> web.StreamResponse:
    ctx = request.app[REGISTRY]
    name = check_name(request.match_info["name"])
    digest = parse_digest(request.match_info["digest"])
    await require(request, name, PULL)
    if request.method == "HEAD":
        size = await visible_blob_size(request, ctx, name, str(digest))
    else:
        size = await ctx.repositories.linked_blob_size(name, str(digest))
    if size is None:
        raise _blob_unknown(str(digest))
    headers = {
        "Docker-Content-Digest": str(digest),
        "Cache-Control": _IMMUTABLE_CACHE,
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
    }
    if request.method == "HEAD":
        headers["Content-Length"] = str(size)
        return web.Response(headers=headers)
    path = ctx.blobs.path(digest)
    if await ctx.blobs.size_on_disk(digest) is None:
        # A row without its file: fsck reports it; the client hears the blob is gone.
        raise _blob_unknown(str(digest))
    return web.FileResponse(path, headers=headers)


async def delete_blob(request: web.Request) -> web.Response:
    ctx = request.app[REGISTRY]
    name = check_name(request.match_info["name"])
    digest = parse_digest(request.match_info["digest"])
    await require(request, name, DELETE)
    await ctx.ensure_writable(name)
    if not await ctx.repositories.unlink_blob(name, str(digest)):
        raise _blob_unknown(str(digest))
    return web.Response(status=202, headers={"Docker-Content-Digest": str(digest)})
