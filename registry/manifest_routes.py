"""`/v2/<name>/manifests/<reference>` and `/v2/<name>/referrers/<digest>`."""

from __future__ import annotations

import json

from aiohttp import web

from registry.access import DELETE, PULL, PUSH, access_of, require
from registry.bodies import read_capped
from registry.context import REGISTRY, RegistryContext
from registry.errors import ErrorCode, RegistryError
from registry.manifests import (
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    ParsedManifest,
    accepts,
    parse_manifest,
)
from registry.names import check_name, check_tag, is_digest_like, is_tag, parse_digest
from registry.proxy import STALE_WARNING
from registry.visibility import visible_blob_sizes
from storage.digests import Digest
from storage.repositories import ManifestRecord, MissingBlobs


def _manifest_unknown(reference: str, message: str | None = None) -> RegistryError:
    return RegistryError(ErrorCode.MANIFEST_UNKNOWN, message, detail={"reference": reference[:256]})


async def _lookup(ctx: RegistryContext, name: str, reference: str) -> ManifestRecord | None:
    if is_digest_like(reference):
        digest = str(parse_digest(reference))
    elif not is_tag(reference):
        return None  # no manifest can be stored under it: unknown, as the spec's tests expect
    else:
        found = await ctx.resolve_tag(name, reference)
        if found is None:
            return None
        digest = found
    return await ctx.manifest(name, digest)


async def get_manifest(request: web.Request) -> web.Response:
    ctx = request.app[REGISTRY]
    name = check_name(request.match_info["name"])
    reference = request.match_info["reference"]
    await require(request, name, PULL)
    stale = False
    proxy = ctx.proxied(name)
    if proxy is not None:
        cached = await proxy.manifest(name, reference)
        record, stale = (cached.record, cached.stale) if cached else (None, False)
    else:
        record = await _lookup(ctx, name, reference)
    if record is None:
        raise _manifest_unknown(reference)
    if not accepts(",".join(request.headers.getall("Accept", [])), record.media_type):
        raise _manifest_unknown(
            reference, f"manifest is {record.media_type}, which the Accept header does not list"
        )
    headers = {
        "Content-Type": record.media_type,
        "Docker-Content-Digest": record.digest,
        "ETag": f'"{record.digest}"',
    }
    if stale:
        headers["Warning"] = STALE_WARNING
    if request.method == "HEAD":
        headers["Content-Length"] = str(record.size)
        return web.Response(headers=headers)
    await ctx.repositories.pulled(
        name, record.digest, None if is_digest_like(reference) else reference
    )
    return web.Response(body=record.content, headers=headers)


async def put_manifest(request: web.Request) -> web.Response:
    ctx = request.app[REGISTRY]
    name = check_name(request.match_info["name"])
    reference = request.match_info["reference"]
    await require(request, name, PUSH)
    create = await access_of(request).may_create(name)
    await ctx.ensure_writable(name, create=create)
    if is_digest_like(reference):
        expected: Digest | None = parse_digest(reference)
        tag = None
    else:
        expected, tag = None, check_tag(reference)
    body = await read_capped(request, MAX_MANIFEST_BYTES)
    parsed = parse_manifest(body, request.headers.get("Content-Type"))
    digest = Digest.of(body, expected.algorithm if expected else "sha256")
    if expected is not None and digest != expected:
        raise RegistryError(
            ErrorCode.DIGEST_INVALID,
            f"manifest digest is {digest}, not {expected}",
            detail={"digest": str(expected)},
        )
    await _check_references(request, ctx, name, parsed)
    try:
        await ctx.repositories.put_manifest(
            name,
            parsed.stored(digest, body),
            tag,
            create=create,
        )
    except MissingBlobs as e:
        # Garbage-collected between the check above and now: the client pushes them again.
        raise RegistryError(
            ErrorCode.MANIFEST_BLOB_UNKNOWN, detail={"digest": e.digests[0]}
        ) from None
    await ctx.changed()
    headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": str(digest)}
    if parsed.subject:
        headers["OCI-Subject"] = parsed.subject
    return web.Response(status=201, headers=headers)


async def _check_references(
    request: web.Request, ctx: RegistryContext, name: str, parsed: ParsedManifest
) -> None:
    """Every blob must be visible to the pusher, every child manifest stored in `name`."""
    sizes = await visible_blob_sizes(request, ctx, name, (d.digest for d in parsed.blobs))
    for descriptor in parsed.blobs:
        size = sizes.get(descriptor.digest)
        if size is None:
            raise RegistryError(
                ErrorCode.MANIFEST_BLOB_UNKNOWN, detail={"digest": descriptor.digest}
            )
        if size != descriptor.size:
            raise RegistryError(
                ErrorCode.MANIFEST_INVALID,
                f"descriptor of {descriptor.digest} says {descriptor.size} bytes,"
                f" the blob has {size}",
            )
    children = [d.digest for d in parsed.manifests]
    present = await ctx.repositories.present_manifests(name, children)
    for digest in children:
        if digest not in present:
            raise RegistryError(ErrorCode.MANIFEST_BLOB_UNKNOWN, detail={"digest": digest})


async def delete_manifest(request: web.Request) -> web.Response:
    ctx = request.app[REGISTRY]
    name = check_name(request.match_info["name"])
    reference = request.match_info["reference"]
    await require(request, name, DELETE)
    await ctx.ensure_writable(name)
    if is_digest_like(reference):
        deleted = await ctx.repositories.delete_manifest(name, str(parse_digest(reference)))
    else:
        deleted = is_tag(reference) and await ctx.repositories.delete_tag(name, reference)
    if not deleted:
        raise _manifest_unknown(reference)
    await ctx.changed()
    return web.Response(status=202)


async def get_referrers(request: web.Request) -> web.Response:
    ctx = request.app[REGISTRY]
    name = check_name(request.match_info["name"])
    digest = parse_digest(request.match_info["digest"])
    await require(request, name, PULL)
    wanted = request.query.get("artifactType")
    descriptors = []
    for record in await ctx.repositories.referrers(name, str(digest)):
        if wanted is not None and record.artifact_type != wanted:
            continue
        descriptor: dict[str, object] = {
            "mediaType": record.media_type,
            "digest": record.digest,
            "size": record.size,
        }
        if record.artifact_type:
            descriptor["artifactType"] = record.artifact_type
        if record.annotations:
            descriptor["annotations"] = record.annotations
        descriptors.append(descriptor)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    headers = {"Content-Type": OCI_INDEX}
    if wanted is not None:
        headers["OCI-Filters-Applied"] = "artifactType"
    return web.Response(body=json.dumps(index).encode(), headers=headers)
