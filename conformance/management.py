"""The Content Management workflow: deleting tags, manifests and blobs, and what a pull sees
afterwards."""

from __future__ import annotations

from conformance.client import Response
from conformance.content import (
    ACCEPT_MANIFESTS,
    EMPTY_CONFIG,
    absent_digest,
    image_manifest,
    oci_image,
)
from conformance.context import Context
from conformance.report import Level

MUST, SHOULD = Level.MUST, Level.SHOULD
DISABLED = (400, 405)  # what a registry with the deletion disabled must answer


async def run(ctx: Context) -> None:
    c, r = ctx.client, ctx.report
    name = ctx.repo("management")
    image = oci_image()
    await ctx.push_image(name, image, "doomed", "kept")

    async def get(ref: str) -> Response:
        return await c.request(
            "GET", f"/v2/{name}/manifests/{ref}", headers={"Accept": ACCEPT_MANIFESTS}
        )

    # Tags.
    resp = await c.request("DELETE", f"/v2/{name}/manifests/doomed")
    # 202 when tag deletion works; 400 or 405 are the required answers when it is disabled.
    r.status("DELETE of a tag answers 202 (or 400/405 if disabled)", resp, (202, *DISABLED))
    r.status("Tag deletion is supported (202)", resp, 202, SHOULD)
    if resp.status == 202:
        r.status("GET of a deleted tag answers 404", await get("doomed"), 404)
        resp = await get("kept")
        r.status("Deleting a tag leaves the manifest's other tags", resp, 200, SHOULD)
        resp = await get(image.manifest.digest)
        r.status("Deleting a tag leaves the manifest pullable by digest", resp, 200, SHOULD)

    # Manifests, with a referrer attached so the referrers list can be checked afterwards.
    await c.push_blob(name, EMPTY_CONFIG.data, EMPTY_CONFIG.digest)
    referrer = image_manifest(
        EMPTY_CONFIG, [], artifact_type="application/vnd.conformance.note", subject=image.manifest
    )
    await ctx.push_manifest(name, referrer)
    referrers_before = await c.request("GET", f"/v2/{name}/referrers/{image.manifest.digest}")

    resp = await c.request("DELETE", f"/v2/{name}/manifests/{image.manifest.digest}")
    if r.status("DELETE of a manifest by digest answers 202", resp, 202):
        r.status(
            "GET of a deleted manifest by digest answers 404", await get(image.manifest.digest), 404
        )
        resp = await c.request("HEAD", f"/v2/{name}/manifests/{image.manifest.digest}")
        r.status("HEAD of a deleted manifest answers 404", resp, 404)
        r.status("GET of a tag of a deleted manifest answers 404", await get("kept"), 404)
        resp = await c.request("GET", f"/v2/{name}/tags/list")
        doc = resp.json_or_none()
        tags = doc.get("tags") if isinstance(doc, dict) else None
        r.check(
            "The tag list no longer names the deleted manifest's tags",
            resp.status == 404 or "kept" not in (tags or []),
            f"{resp.describe()}, tags {tags}",
            SHOULD,
        )

    resp = await c.request("DELETE", f"/v2/{name}/manifests/{referrer.digest}")
    if r.status("DELETE of a manifest with a subject answers 202", resp, 202):
        resp = await c.request("GET", f"/v2/{name}/referrers/{image.manifest.digest}")
        doc = resp.json_or_none()
        listed = [
            m.get("digest")
            for m in (doc.get("manifests") or [] if isinstance(doc, dict) else [])
            if isinstance(m, dict)
        ]
        if referrers_before.status == 404:
            r.check(
                "A deleted referrer leaves the referrers list",
                False,
                "not run: the registry has no referrers API (404)",
            )
        else:
            r.check(
                "A deleted referrer leaves the referrers list",
                resp.status == 200 and referrer.digest not in listed,
                f"{resp.describe()}, lists {listed}",
            )

    resp = await c.request("DELETE", f"/v2/{name}/manifests/{absent_digest()}")
    r.status("DELETE of an unknown manifest answers 404", resp, 404)
    r.error_code(
        "DELETE of an unknown manifest names MANIFEST_UNKNOWN", resp, ["MANIFEST_UNKNOWN"], SHOULD
    )
    resp = await c.request(
        "DELETE", f"/v2/{ctx.repo('management', 'never-pushed')}/manifests/{absent_digest()}"
    )
    r.status("DELETE of a manifest in a nonexistent repository answers 404", resp, 404)

    # Blobs, after the manifests that used them are gone.
    for label, blob in (("layer", image.layers[0]), ("config", image.config)):
        resp = await c.request("DELETE", f"/v2/{name}/blobs/{blob.digest}")
        if r.status(f"DELETE of a {label} blob answers 202", resp, 202):
            resp = await c.request("GET", f"/v2/{name}/blobs/{blob.digest}", follow_redirects=True)
            r.status(f"GET of a deleted {label} blob answers 404", resp, 404)
            resp = await c.request("HEAD", f"/v2/{name}/blobs/{blob.digest}")
            r.status(f"HEAD of a deleted {label} blob answers 404", resp, 404)
    resp = await c.request("DELETE", f"/v2/{name}/blobs/{absent_digest()}")
    r.status("DELETE of an unknown blob answers 404", resp, 404)
    r.error_code("DELETE of an unknown blob names BLOB_UNKNOWN", resp, ["BLOB_UNKNOWN"], SHOULD)
