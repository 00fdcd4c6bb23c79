"""The /v2 route table. Upload routes come before blob routes: names may contain slashes."""

from __future__ import annotations

from aiohttp import web

from registry import auth, blob_routes, listing_routes, manifest_routes, upload_routes

_NAME = "{name:.+}"


async def api_version(request: web.Request) -> web.Response:
    return web.json_response({})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2/", api_version, allow_head=True)
    r.add_get("/v2/_catalog", listing_routes.catalog, allow_head=False)
    r.add_get(auth.TOKEN_PATH, auth.token_endpoint, allow_head=False)
    r.add_post(auth.TOKEN_PATH, auth.token_endpoint)

    uploads = f"/v2/{_NAME}/blobs/uploads/"
    r.add_post(uploads, upload_routes.start_upload)
    r.add_post(f"/v2/{_NAME}/blobs/uploads", upload_routes.start_upload)
    session = uploads + "{upload_id}"
    r.add_patch(session, upload_routes.patch_upload)
    r.add_put(session, upload_routes.finish_upload)
    r.add_get(session, upload_routes.upload_status, allow_head=False)
    r.add_delete(session, upload_routes.cancel_upload)

    blob = f"/v2/{_NAME}/blobs/{{digest}}"
    r.add_get(blob, blob_routes.get_blob)  # HEAD too
    r.add_delete(blob, blob_routes.delete_blob)

    manifest = f"/v2/{_NAME}/manifests/{{reference}}"
    r.add_get(manifest, manifest_routes.get_manifest)
    r.add_put(manifest, manifest_routes.put_manifest)
    r.add_delete(manifest, manifest_routes.delete_manifest)

    r.add_get(f"/v2/{_NAME}/referrers/{{digest}}", manifest_routes.get_referrers, allow_head=False)
    r.add_get(f"/v2/{_NAME}/tags/list", listing_routes.list_tags, allow_head=False)
