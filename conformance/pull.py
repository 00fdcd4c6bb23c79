"""The Pull workflow: determining support, pulling manifests and blobs, and checking existence.

Every registry must support this category in full.
"""

from __future__ import annotations

from conformance.content import (
    ACCEPT_MANIFESTS,
    Manifest,
    absent_digest,
    docker_image,
    image_index,
    oci_image,
)
from conformance.context import Context
from conformance.report import Level

MUST, SHOULD = Level.MUST, Level.SHOULD


async def run(ctx: Context) -> None:
    c, r = ctx.client, ctx.report

    resp = await c.request("GET", "/v2/")
    r.status("GET /v2/ answers 200: the registry implements the specification", resp, 200)

    # A multi-level name: the spec's name grammar allows any number of path components.
    name = ctx.repo("pull", "multi", "level")
    image = oci_image()
    docker = docker_image()
    index = image_index([image.manifest])
    await ctx.push_image(name, image, "v1")
    await ctx.push_image(name, docker, "docker")
    await ctx.push_manifest(name, index, "multi")

    await _manifest_pulls(ctx, name, "OCI image manifest by tag", image.manifest, "v1")
    await _manifest_pulls(
        ctx, name, "OCI image manifest by digest", image.manifest, image.manifest.digest
    )
    await _manifest_pulls(ctx, name, "OCI index by tag", index, "multi")
    await _manifest_pulls(ctx, name, "Docker schema2 manifest by tag", docker.manifest, "docker")

    for ref, how in (("v1", "tag"), (image.manifest.digest, "digest")):
        resp = await c.request(
            "HEAD", f"/v2/{name}/manifests/{ref}", headers={"Accept": ACCEPT_MANIFESTS}
        )
        r.status(f"HEAD manifest by {how} answers 200", resp, 200)
        r.header_equals(
            f"HEAD manifest by {how} has Docker-Content-Digest",
            resp,
            "Docker-Content-Digest",
            image.manifest.digest,
            SHOULD,
        )
        r.header_equals(
            f"HEAD manifest by {how} has Content-Length of the manifest",
            resp,
            "Content-Length",
            str(image.manifest.size),
            SHOULD,
        )

    # Absent manifests, by tag and by digest, and in a repository that does not exist.
    resp = await c.request("GET", f"/v2/{name}/manifests/no-such-tag")
    r.status("GET manifest by unknown tag answers 404", resp, 404)
    r.error_code("GET manifest by unknown tag names MANIFEST_UNKNOWN", resp, ["MANIFEST_UNKNOWN"])
    resp = await c.request("GET", f"/v2/{name}/manifests/{absent_digest()}")
    r.status("GET manifest by unknown digest answers 404", resp, 404)
    r.error_code(
        "GET manifest by unknown digest names MANIFEST_UNKNOWN", resp, ["MANIFEST_UNKNOWN"]
    )
    resp = await c.request("HEAD", f"/v2/{name}/manifests/no-such-tag")
    r.status("HEAD manifest by unknown tag answers 404", resp, 404)
    # The official suite (distribution-spec conformance, "Pull manifests") asks for a name no
    # tag can have and expects 404, not 400: nothing is stored under it.
    for method in ("HEAD", "GET"):
        resp = await c.request(method, f"/v2/{name}/manifests/.INVALID_MANIFEST_NAME")
        r.status(f"{method} manifest by a reference no tag can have answers 404", resp, 404)
    r.error_code(
        "GET manifest by a reference no tag can have names MANIFEST_UNKNOWN",
        resp,
        ["MANIFEST_UNKNOWN"],
    )
    resp = await c.request("HEAD", f"/v2/{name}/manifests/{absent_digest()}")
    r.status("HEAD manifest by unknown digest answers 404", resp, 404)
    missing_repo = ctx.repo("pull", "never-pushed")
    resp = await c.request("GET", f"/v2/{missing_repo}/manifests/latest")
    r.status("GET manifest in a nonexistent repository answers 404", resp, 404)
    r.error_code(
        "GET manifest in a nonexistent repository names NAME_UNKNOWN or MANIFEST_UNKNOWN",
        resp,
        ["NAME_UNKNOWN", "MANIFEST_UNKNOWN"],
    )

    # Blobs.
    for label, blob in (("config", image.config), ("layer", image.layers[0])):
        # A registry may redirect blob downloads elsewhere (e.g. to object storage).
        resp = await c.request("GET", f"/v2/{name}/blobs/{blob.digest}", follow_redirects=True)
        r.status(f"GET {label} blob answers 200", resp, 200)
        r.check(
            f"GET {label} blob returns the blob's bytes",
            resp.body == blob.data,
            f"{len(resp.body)} bytes, expected {blob.size}",
        )
        dcd = resp.registry_header("Docker-Content-Digest")
        r.check(
            f"GET {label} blob has Docker-Content-Digest",
            dcd is not None,
            f"Docker-Content-Digest: {dcd}",
            SHOULD,
        )
        if dcd is not None:
            r.check(
                f"GET {label} blob's Docker-Content-Digest matches the body",
                dcd == blob.digest,
                f"{dcd}, body is {blob.digest}",
            )
        resp = await c.request("HEAD", f"/v2/{name}/blobs/{blob.digest}", follow_redirects=True)
        r.status(f"HEAD {label} blob answers 200", resp, 200)
        r.header_equals(
            f"HEAD {label} blob has Content-Length of the blob",
            resp,
            "Content-Length",
            str(blob.size),
            SHOULD,
        )
        r.header_equals(
            f"HEAD {label} blob has Docker-Content-Digest",
            resp,
            "Docker-Content-Digest",
            blob.digest,
            SHOULD,
        )

    blob = image.layers[0]
    start, end = 10, min(blob.size - 1, 99)
    resp = await c.request(
        "GET",
        f"/v2/{name}/blobs/{blob.digest}",
        headers={"Range": f"bytes={start}-{end}"},
        follow_redirects=True,
    )
    ok = resp.status == 206 and resp.body == blob.data[start : end + 1]
    r.check(
        "GET blob with a Range header answers 206 with that byte range",
        ok,
        f"{resp.describe()}, {len(resp.body)} bytes, expected 206 and {end - start + 1} bytes",
        SHOULD,
    )
    if resp.status == 206:
        r.header_equals(
            "Partial blob response has Content-Range",
            resp,
            "Content-Range",
            f"bytes {start}-{end}/{blob.size}",
            SHOULD,
        )

    missing = absent_digest()
    resp = await c.request("GET", f"/v2/{name}/blobs/{missing}", follow_redirects=True)
    r.status("GET unknown blob answers 404", resp, 404)
    r.error_code("GET unknown blob names BLOB_UNKNOWN", resp, ["BLOB_UNKNOWN"])
    resp = await c.request("HEAD", f"/v2/{name}/blobs/{missing}")
    r.status("HEAD unknown blob answers 404", resp, 404)
    resp = await c.request("GET", f"/v2/{missing_repo}/blobs/{image.config.digest}")
    r.status("GET blob in a nonexistent repository answers 404", resp, 404)


async def _manifest_pulls(ctx: Context, name: str, label: str, m: Manifest, ref: str) -> None:
    c, r = ctx.client, ctx.report
    resp = await c.request(
        "GET", f"/v2/{name}/manifests/{ref}", headers={"Accept": ACCEPT_MANIFESTS}
    )
    if not r.status(f"GET {label} answers 200", resp, 200):
        return
    r.check(
        f"GET {label} returns the exact bytes pushed",
        resp.body == m.body,
        f"{len(resp.body)} bytes, expected {m.size} bytes with digest {m.digest}",
    )
    ctype = resp.header("Content-Type") or ""
    r.check(
        f"GET {label} has Content-Type {m.media_type}, as pushed",
        ctype.split(";")[0].strip() == m.media_type,
        f"Content-Type: {ctype}",
        SHOULD,
    )
    r.check(
        f"GET {label} has no parameters on Content-Type",
        ";" not in ctype,
        f"Content-Type: {ctype}",
        SHOULD,
    )
    r.header_equals(
        f"GET {label} has Docker-Content-Digest", resp, "Docker-Content-Digest", m.digest, SHOULD
    )
