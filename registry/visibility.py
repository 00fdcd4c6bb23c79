"""Which blobs a caller sees in a repository.

A blob is in R if it is linked to R. It is also *visible* in R (to HEAD, and to a manifest
push, which then links it) if the caller may push to R and may read it in some other
repository: docker then says "Layer already exists" across one's own repositories, and nobody
learns of a blob they could not read. So is a blob a push refused for its quota had linked into
R, for the grace period (storage/refused_pushes.py). GET serves linked blobs only, as the spec
asks.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from registry.access import PUSH, access_of
from registry.context import RegistryContext


async def readable_elsewhere(request: web.Request, ctx: RegistryContext, digest: str) -> bool:
    access = access_of(request)
    for name in await ctx.repositories.repositories_with_blob(digest):
        if await access.may_read(name):
            return True
    return False


async def visible_blob_size(
    request: web.Request, ctx: RegistryContext, repository: str, digest: str
) -> int | None:
    size = await ctx.repositories.linked_blob_size(repository, digest)
    if size is not None:
        return size
    if not await access_of(request).allows(repository, PUSH):
        return None
    size = await ctx.repositories.refused_blob_size(repository, digest)
    if size is not None:
        return size
    if await readable_elsewhere(request, ctx, digest):
        return await ctx.repositories.blob_size(digest)
    return None


async def visible_blob_sizes(
    request: web.Request, ctx: RegistryContext, repository: str, digests: Iterable[str]
) -> dict[str, int]:
    """Sizes of the visible blobs among `digests`; the invisible ones are left out."""
    sizes: dict[str, int] = {}
    for digest in dict.fromkeys(digests):
        size = await visible_blob_size(request, ctx, repository, digest)
        if size is not None:
            sizes[digest] = size
    return sizes
