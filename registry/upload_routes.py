"""`/v2/<name>/blobs/uploads/`: upload sessions, monolithic uploads and cross-repository mounts."""

from __future__ import annotations

import re

from aiohttp import web

from registry.access import PUSH, access_of, require
from registry.bodies import batches, declared_length, has_body
from registry.context import REGISTRY, RegistryContext
from registry.errors import ErrorCode, RegistryError
from registry.names import check_name, parse_digest
from registry.visibility import readable_elsewhere
from storage.blobstore import DigestMismatch, OffsetMismatch, Upload, UploadError
from storage.digests import Digest
from storage.repositories import MissingBlobs

# ASCII digits only (re.ASCII: `\d` alone also matches other scripts' digits), and at most
# 19 of them: int() refuses numbers of over 4300 digits, and no blob is 10^19 bytes.
_CONTENT_RANGE_RE = re.compile(r"(?:bytes )?(\d{1,19})-(\d{1,19})(?:/(?:\d{1,19}|\*))?", re.ASCII)
# A filesystem takes chunks of any size; the header tells clients there is no minimum to meet.
_CHUNK_MIN_LENGTH = "1"


def _session_headers(name: str, upload: Upload) -> dict[str, str]:
    return {
        "Location": f"/v2/{name}/blobs/uploads/{upload.id}",
        "Range": f"0-{max(upload.offset - 1, 0)}",
        "Docker-Upload-UUID": upload.id,
    }


def _created(name: str, digest: Digest) -> web.Response:
    return web.Response(
        status=201,
        headers={"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": str(digest)},
    )


def _digest_invalid(error: DigestMismatch) -> RegistryError:
    return RegistryError(ErrorCode.DIGEST_INVALID, str(error))


async def start_upload(request: web.Request) -> web.Response:
    ctx = request.app[REGISTRY]
    name = check_name(request.match_info["name"])
    await require(request, name, PUSH)
    create = await access_of(request).may_create(name)
    await ctx.ensure_writable(name, create=create)
    query = request.query
    if "mount" in query:
        mounted = await _try_mount(request, ctx, name, parse_digest(query["mount"]), create)
        if mounted is not None:
            return mounted
    if "digest" in query:
        digest = parse_digest(query["digest"])
        try:
            await ctx.uploads.ingest(name, digest, batches(request), create=create)
        except DigestMismatch as e:
            raise _digest_invalid(e) from None
        return _created(name, digest)
    upload = await ctx.uploads.create(name)
    headers = _session_headers(name, upload)
    headers["OCI-Chunk-Min-Length"] = _CHUNK_MIN_LENGTH
    return web.Response(status=202, headers=headers)


async def _try_mount(
    request: web.Request, ctx: RegistryContext, name: str, digest: Digest, create: bool
) -> web.Response | None:
    """Link a blob from another repository, if the caller may read it there."""
    source = request.query.get("from")
    if source:
        check_name(source)
        allowed = await access_of(request).may_read(source) and (
            await ctx.repositories.linked_blob_size(source, str(digest)) is not None
        )
    else:
        # No source named: mount whatever this caller can already read somewhere.
        allowed = await readable_elsewhere(request, ctx, str(digest))
    if not allowed:
        return None
    try:
        await ctx.repositories.link_blob(name, str(digest), create=create)
    except MissingBlobs:
        return None  # collected since we looked: the client uploads it instead
    return _created(name, digest)


async def _session(request: web.Request, ctx: RegistryContext, name: str) -> Upload:
    upload = await ctx.uploads.get(name, request.match_info["upload_id"])
    if upload is None:
        raise RegistryError(
            ErrorCode.BLOB_UPLOAD_UNKNOWN, detail={"uuid": request.match_info["upload_id"][:64]}
        )
    return upload


async def _open_session(request: web.Request, ctx: RegistryContext, name: str) -> Upload:
    """A session that still takes data: DENIED with the quota's message once its push was
    refused (storage/refused_pushes.py), whichever of the push's layers the client reports."""
    upload = await _session(request, ctx, name)
    if upload.refused is not None:
        raise RegistryError(ErrorCode.DENIED, upload.refused)
    return upload


def _chunk_start(request: web.Request, upload: Upload) -> int | None:
    """The start offset a Content-Range header claims, checked against the body length."""
    header = request.headers.get("Content-Range")
    if header is None:
        return None
    match = _CONTENT_RANGE_RE.fullmatch(header.strip())
    length = declared_length(request)
    if (
        match is None
        or int(match[2]) < int(match[1])
        or (length is not None and int(match[2]) - int(match[1]) + 1 != length)
    ):
        raise _range_invalid(request, upload, f"invalid Content-Range {header[:64]!r}")
    return int(match[1])


def _range_invalid(request: web.Request, upload: Upload, message: str) -> RegistryError:
    return RegistryError(
        ErrorCode.BLOB_UPLOAD_INVALID,
        message,
        status=416,
        headers=_session_headers(request.match_info["name"], upload),
    )


async def patch_upload(request: web.Request) -> web.Response:
    ctx = request.app[REGISTRY]
    name = check_name(request.match_info["name"])
    await require(request, name, PUSH)
    upload = await _open_session(request, ctx, name)
    await ctx.ensure_writable(name, create=await access_of(request).may_create(name))
    start = _chunk_start(request, upload)
    try:
        await ctx.uploads.append(upload, batches(request), start)
    except OffsetMismatch as e:
        raise _range_invalid(request, upload, str(e)) from None
    except UploadError as e:
        raise RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, str(e)) from None
    return web.Response(status=202, headers=_session_headers(name, upload))


async def finish_upload(request: web.Request) -> web.Response:
    ctx = request.app[REGISTRY]
    name = check_name(request.match_info["name"])
    await require(request, name, PUSH)
    upload = await _open_session(request, ctx, name)
    create = await access_of(request).may_create(name)
    await ctx.ensure_writable(name, create=create)
    if "digest" not in request.query:
        raise RegistryError(ErrorCode.DIGEST_INVALID, "the digest query parameter is required")
    digest = parse_digest(request.query["digest"])
    chunks = None
    if has_body(request):
        start = _chunk_start(request, upload)
        if start is not None and start != upload.offset:
            raise _range_invalid(request, upload, f"chunk must start at offset {upload.offset}")
        chunks = batches(request)
    try:
        await ctx.uploads.finish(upload, digest, chunks, create=create)
    except DigestMismatch as e:
        raise _digest_invalid(e) from None
    except UploadError as e:
        raise RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, str(e)) from None
    return _created(name, digest)


async def upload_status(request: web.Request) -> web.Response:
    ctx = request.app[REGISTRY]
    name = check_name(request.match_info["name"])
    await require(request, name, PUSH)
    upload = await _open_session(request, ctx, name)
    return web.Response(status=204, headers=_session_headers(name, upload))


async def cancel_upload(request: web.Request) -> web.Response:
    ctx = request.app[REGISTRY]
    name = check_name(request.match_info["name"])
    await require(request, name, PUSH)
    upload = await _session(request, ctx, name)
    await ctx.uploads.cancel(upload)
    return web.Response(status=204)
