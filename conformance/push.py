"""The Push workflow: monolithic and chunked blob uploads, cross-repository mounts, and manifest
pushes of every kind (OCI image, OCI index, Docker schema2, artifact, with a subject)."""

from __future__ import annotations

import os
import uuid

from conformance.client import Response, with_query
from conformance.content import (
    EMPTY_CONFIG,
    OCI_MANIFEST,
    Blob,
    Manifest,
    absent_digest,
    docker_image,
    encode,
    image_index,
    image_manifest,
    oci_image,
    sha256,
)
from conformance.context import Context
from conformance.report import Level

MUST, SHOULD = Level.MUST, Level.SHOULD
OCTETS = {"Content-Type": "application/octet-stream"}
ARTIFACT_TYPE = "application/vnd.conformance.example+type"


def _octet_blob(size: int) -> Blob:
    return Blob(os.urandom(size), "application/octet-stream")


async def run(ctx: Context) -> None:
    name = ctx.repo("push", "a", "b")
    await _post_then_put(ctx, name)
    await _single_post(ctx, name)
    await _chunked(ctx, name)
    await _chunked_closed_by_empty_put(ctx, name)
    await _mount(ctx, name)
    await _manifests(ctx, name)


async def _start_upload(ctx: Context, name: str, label: str) -> tuple[Response, str | None]:
    c, r = ctx.client, ctx.report
    resp = await c.request(
        "POST", f"/v2/{name}/blobs/uploads/", headers={"Content-Length": "0"}, data=b""
    )
    r.status(f"POST /blobs/uploads/ ({label}) answers 202", resp, 202)
    location = resp.header("Location")
    r.check(
        f"POST /blobs/uploads/ ({label}) has a Location",
        bool(location),
        f"Location: {location}",
    )
    return resp, c.resolve(location, resp.url) if location else None


async def _check_pullable_blob(ctx: Context, label: str, resp: Response, blob: Blob) -> None:
    """A 201 for a blob must carry a Location from which the blob can be pulled."""
    c, r = ctx.client, ctx.report
    location = resp.header("Location")
    if not r.check(f"{label} has a Location", bool(location), f"Location: {location}"):
        return
    assert location is not None
    got = await c.request("GET", c.resolve(location, resp.url), follow_redirects=True)
    r.check(
        f"{label}: the Location serves the blob",
        got.status == 200 and got.body == blob.data,
        f"{got.describe()}, {len(got.body)} bytes, expected 200 and {blob.size} bytes",
    )


async def _post_then_put(ctx: Context, name: str) -> None:
    c, r = ctx.client, ctx.report
    blob = _octet_blob(1500)
    _, first = await _start_upload(ctx, name, "POST then PUT")
    _, second = await _start_upload(ctx, name, "a second session")
    r.check(
        "Each upload session gets its own Location",
        first is not None and first != second,
        f"{first} vs {second}",
    )
    if first is None:
        return
    resp = await c.request(
        "PUT", with_query(first, digest=blob.digest), headers=OCTETS, data=blob.data
    )
    if r.status("PUT <location>?digest= completes a monolithic upload with 201", resp, 201):
        await _check_pullable_blob(ctx, "Monolithic PUT", resp, blob)
    resp = await c.request("HEAD", f"/v2/{name}/blobs/{blob.digest}")
    r.status("A blob pushed by POST then PUT answers HEAD with 200", resp, 200)

    if second is not None:
        wrong = _octet_blob(100)
        resp = await c.request(
            "PUT", with_query(second, digest=sha256(b"other")), headers=OCTETS, data=wrong.data
        )
        r.status("PUT with a digest that does not match the bytes answers 400", resp, 400)
        r.error_code("A digest mismatch names DIGEST_INVALID", resp, ["DIGEST_INVALID"], SHOULD)


async def _single_post(ctx: Context, name: str) -> None:
    c, r = ctx.client, ctx.report
    blob = _octet_blob(1200)
    resp = await c.request(
        "POST",
        f"/v2/{name}/blobs/uploads/",
        params={"digest": blob.digest},
        headers=OCTETS,
        data=blob.data,
    )
    # Registries MAY support single-POST uploads; those that do not SHOULD answer 202 so the
    # client can carry on with a PUT.
    r.status("POST /blobs/uploads/?digest= answers 201 (or 202 to fall back)", resp, (201, 202))
    if resp.status == 201:
        await _check_pullable_blob(ctx, "Single-POST upload", resp, blob)
        return
    location = resp.header("Location")
    if not r.check("202 to POST ?digest= has a Location", bool(location), f"Location: {location}"):
        return
    assert location is not None
    resp = await c.request(
        "PUT",
        with_query(c.resolve(location, resp.url), digest=blob.digest),
        headers=OCTETS,
        data=blob.data,
    )
    if r.status("PUT after a 202 to POST ?digest= completes with 201", resp, 201):
        await _check_pullable_blob(ctx, "PUT after single-POST fallback", resp, blob)


def _chunk_size(resp: Response) -> int:
    """Honour the registry's minimum chunk size, when it announces one."""
    announced = resp.header("OCI-Chunk-Min-Length")
    try:
        return max(1024, int(announced)) if announced else 1024
    except ValueError:
        return 1024


async def _chunked(ctx: Context, name: str) -> None:
    c, r = ctx.client, ctx.report
    resp, location = await _start_upload(ctx, name, "chunked")
    if location is None:
        return
    size = _chunk_size(resp)
    blob = _octet_blob(2 * size + 100)
    first, second, last = blob.data[:size], blob.data[size : 2 * size], blob.data[2 * size :]

    resp = await _patch(ctx, location, first, 0)
    if not r.status("PATCH of the first chunk answers 202", resp, 202):
        return
    location = _next_location(ctx, resp, location, "PATCH of the first chunk")
    r.header_equals("PATCH of the first chunk has Range 0-<end>", resp, "Range", f"0-{size - 1}")

    resp = await c.request("GET", location)
    r.status("GET <location> of an active upload answers 204", resp, 204)
    r.check(
        "GET <location> of an active upload has a Location",
        bool(resp.header("Location")),
        f"Location: {resp.header('Location')}",
    )
    r.header_equals("GET <location> has Range 0-<end>", resp, "Range", f"0-{size - 1}")
    if resp.status == 204:
        location = _next_location(ctx, resp, location, None)

    resp = await _patch(ctx, location, second, size)
    if not r.status("PATCH of the next chunk in order answers 202", resp, 202):
        return
    location = _next_location(ctx, resp, location, "PATCH of the next chunk")
    r.header_equals("PATCH of the next chunk has Range 0-<end>", resp, "Range", f"0-{2 * size - 1}")

    # The final chunk travels in the closing PUT.
    resp = await c.request(
        "PUT",
        with_query(location, digest=blob.digest),
        headers={
            **OCTETS,
            "Content-Range": f"{2 * size}-{blob.size - 1}",
        },
        data=last,
    )
    if r.status("Closing PUT carrying the final chunk answers 201", resp, 201):
        await _check_pullable_blob(ctx, "Chunked upload closed by PUT with data", resp, blob)

    await _out_of_order(ctx, name)

    bogus = f"/v2/{name}/blobs/uploads/{uuid.uuid4()}"
    resp = await c.request("GET", bogus)
    r.status("GET of an unknown upload session answers 404", resp, 404)
    r.error_code(
        "An unknown upload session names BLOB_UPLOAD_UNKNOWN", resp, ["BLOB_UPLOAD_UNKNOWN"], SHOULD
    )


async def _out_of_order(ctx: Context, name: str) -> None:
    """A session of its own, so a registry that accepts the stray chunk spoils nothing else."""
    c, r = ctx.client, ctx.report
    resp, location = await _start_upload(ctx, name, "out-of-order chunk")
    if location is None:
        return
    size = _chunk_size(resp)
    chunk = os.urandom(size)
    resp = await _patch(ctx, location, chunk, 0)
    if resp.status != 202:
        return  # already reported by the in-order upload
    location = _next_location(ctx, resp, location, None)
    # Sending the first chunk again starts before the upload's end: out of order.
    resp = await _patch(ctx, location, chunk, 0)
    r.status("A chunk that overlaps what was uploaded answers 416", resp, 416)
    if resp.status == 202:  # the registry took the stray chunk: carry on from where it says
        location = _next_location(ctx, resp, location, None)
    # And one that leaves a gap after it.
    resp = await _patch(ctx, location, chunk, 2 * size)
    r.status("A chunk that leaves a gap answers 416", resp, 416)
    resp = await c.request("GET", location)
    r.check(
        "After a 416, GET <location> still reports the upload's valid Range",
        resp.status == 204 and resp.header("Range") == f"0-{size - 1}",
        f"{resp.describe()}, Range: {resp.header('Range')}, expected 204 and 0-{size - 1}",
    )


async def _chunked_closed_by_empty_put(ctx: Context, name: str) -> None:
    c, r = ctx.client, ctx.report
    resp, location = await _start_upload(ctx, name, "chunked, empty PUT")
    if location is None:
        return
    size = _chunk_size(resp)
    blob = _octet_blob(size + 500)
    offset = 0
    for chunk in (blob.data[:size], blob.data[size:]):
        resp = await _patch(ctx, location, chunk, offset)
        if not r.status(f"PATCH of bytes {offset}- answers 202", resp, 202):
            return
        location = _next_location(ctx, resp, location, None)
        offset += len(chunk)
    resp = await c.request("PUT", with_query(location, digest=blob.digest), data=b"")
    if r.status("Closing PUT without a body after all chunks answers 201", resp, 201):
        await _check_pullable_blob(ctx, "Chunked upload closed by empty PUT", resp, blob)


async def _patch(ctx: Context, location: str, chunk: bytes, offset: int) -> Response:
    return await ctx.client.request(
        "PATCH",
        location,
        headers={**OCTETS, "Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
        data=chunk,
    )


def _next_location(ctx: Context, resp: Response, current: str, label: str | None) -> str:
    location = resp.header("Location")
    if label is not None:
        ctx.report.check(f"{label} has a Location", bool(location), f"Location: {location}")
    return ctx.client.resolve(location, resp.url) if location else current


async def _mount(ctx: Context, name: str) -> None:
    c, r = ctx.client, ctx.report
    source = ctx.repo("push", "mount-source")
    blob = _octet_blob(900)
    await c.push_blob(source, blob.data, blob.digest)
    resp = await c.request(
        "POST",
        f"/v2/{name}/blobs/uploads/",
        params={"mount": blob.digest, "from": source},
        headers={"Content-Length": "0"},
        data=b"",
    )
    # 202 is the allowed answer of a registry that cannot mount; this suite wants the mount.
    if r.status("Cross-repository mount answers 201", resp, 201, SHOULD):
        await _check_pullable_blob(ctx, "Cross-repository mount", resp, blob)
        resp = await c.request("HEAD", f"/v2/{name}/blobs/{blob.digest}")
        r.status("A mounted blob answers HEAD in the target repository", resp, 200)

    resp = await c.request(
        "POST",
        f"/v2/{name}/blobs/uploads/",
        params={"mount": absent_digest(), "from": source},
        headers={"Content-Length": "0"},
        data=b"",
    )
    r.status("Mount of an unknown blob falls back to an upload session (202)", resp, 202, SHOULD)
    r.check(
        "The fallback upload session has a Location",
        bool(resp.header("Location")),
        f"Location: {resp.header('Location')}",
        SHOULD,
    )


async def _put_manifest(ctx: Context, name: str, ref: str, m: Manifest) -> Response:
    return await ctx.client.request(
        "PUT", f"/v2/{name}/manifests/{ref}", headers={"Content-Type": m.media_type}, data=m.body
    )


async def _check_manifest_push(
    ctx: Context, label: str, name: str, ref: str, m: Manifest, level: Level = MUST
) -> Response:
    c, r = ctx.client, ctx.report
    resp = await _put_manifest(ctx, name, ref, m)
    if not r.status(f"PUT {label} answers 201", resp, 201, level):
        return resp
    location = resp.header("Location")
    if r.check(f"PUT {label} has a Location", bool(location), f"Location: {location}"):
        assert location is not None
        got = await c.request(
            "GET", c.resolve(location, resp.url), headers={"Accept": m.media_type}
        )
        r.check(
            f"PUT {label}: the Location serves the exact bytes pushed",
            got.status == 200 and got.body == m.body,
            f"{got.describe()}, {len(got.body)} bytes, expected 200 and {m.size} bytes",
        )
    dcd = resp.header("Docker-Content-Digest")
    if dcd is not None:
        r.check(
            f"PUT {label}: Docker-Content-Digest is the manifest's digest",
            dcd == m.digest,
            f"{dcd}, expected {m.digest}",
        )
    return resp


async def _manifests(ctx: Context, name: str) -> None:
    c, r = ctx.client, ctx.report
    image = oci_image()
    for blob in image.blobs:
        await c.push_blob(name, blob.data, blob.digest)
    await _check_manifest_push(ctx, "OCI image manifest by tag", name, "v1", image.manifest)

    by_digest = image_manifest(image.config, image.layers, annotations={"org.conformance": "d"})
    await _check_manifest_push(
        ctx, "OCI image manifest by digest", name, by_digest.digest, by_digest
    )

    index = image_index([image.manifest, by_digest])
    await _check_manifest_push(ctx, "OCI image index by tag", name, "index", index)

    docker = docker_image()
    for blob in docker.blobs:
        await c.push_blob(name, blob.data, blob.digest)
    await _check_manifest_push(
        ctx, "Docker schema2 manifest by tag", name, "docker", docker.manifest
    )

    # An artifact: artifactType set, and the empty JSON config descriptor the image spec defines.
    payload = Blob(os.urandom(300), "application/vnd.conformance.payload")
    for blob in (EMPTY_CONFIG, payload):
        await c.push_blob(name, blob.data, blob.digest)
    artifact = image_manifest(EMPTY_CONFIG, [payload], artifact_type=ARTIFACT_TYPE)
    await _check_manifest_push(
        ctx, "artifact manifest (artifactType, empty config)", name, "artifact", artifact
    )

    referrer = image_manifest(
        EMPTY_CONFIG, [payload], artifact_type=ARTIFACT_TYPE, subject=image.manifest
    )
    resp = await _check_manifest_push(
        ctx, "manifest with a subject", name, referrer.digest, referrer
    )
    if resp.status == 201:
        r.header_equals(
            "PUT of a manifest with a subject answers OCI-Subject (referrers API)",
            resp,
            "OCI-Subject",
            image.manifest.digest,
        )

    # The subject need not exist: referrers may be pushed before what they refer to.
    ghost = image_manifest(image.config, image.layers, annotations={"org.conformance": "ghost"})
    orphan = image_manifest(EMPTY_CONFIG, [payload], artifact_type=ARTIFACT_TYPE, subject=ghost)
    await _check_manifest_push(
        ctx, "manifest whose subject does not exist", name, orphan.digest, orphan
    )

    # A tag of the maximum length, using every character class the tag grammar allows.
    tag = ("Tag_0.-" * 19)[:128]
    await _check_manifest_push(ctx, "manifest by a 128-character tag", name, tag, image.manifest)

    # Manifests up to 4 megabytes should be accepted.
    pad = 4_000_000 - len(image_manifest(image.config, image.layers, annotations={"pad": ""}).body)
    big = image_manifest(image.config, image.layers, annotations={"pad": "x" * pad})
    resp = await _put_manifest(ctx, name, "big", big)
    r.status(f"PUT of a {big.size}-byte manifest answers 201", resp, 201, SHOULD)

    # A manifest naming a blob the registry does not have: accepting it is allowed, but a
    # rejection must name MANIFEST_BLOB_UNKNOWN.
    ghost_layer = _octet_blob(64)
    dangling = image_manifest(image.config, [Blob(ghost_layer.data, image.layers[0].media_type)])
    resp = await _put_manifest(ctx, name, "dangling", dangling)
    if resp.status == 201:
        r.check("Manifest with an unknown blob: accepted (allowed)", True, resp.describe())
    else:
        r.error_code(
            "Manifest with an unknown blob is rejected with MANIFEST_BLOB_UNKNOWN",
            resp,
            ["MANIFEST_BLOB_UNKNOWN"],
        )

    # Truncated JSON: not a manifest at all.
    bad = Manifest(encode({"schemaVersion": 2, "mediaType": OCI_MANIFEST})[:-4], OCI_MANIFEST)
    resp = await _put_manifest(ctx, name, "invalid", bad)
    r.status("PUT of a malformed manifest answers 400", resp, 400, SHOULD)
    r.error_code("A malformed manifest names MANIFEST_INVALID", resp, ["MANIFEST_INVALID"], SHOULD)

    other = Manifest(encode({"schemaVersion": 2, "mediaType": OCI_MANIFEST}), OCI_MANIFEST)
    resp = await _put_manifest(ctx, name, other.digest, by_digest)
    r.status("PUT of a manifest under a digest that is not its own answers 400", resp, 400)
