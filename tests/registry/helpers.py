"""Small pushes for registry tests, spoken over the real HTTP API."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from aiohttp.test_utils import TestClient

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

Client = TestClient[Any, Any]


def basic(user: str, password: str) -> dict[str, str]:
    """HTTP Basic credentials, as /v2 and the token endpoint take them."""
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def push_blob(client: Client, name: str, data: bytes) -> str:
    digest = digest_of(data)
    resp = await client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, data=data)
    assert resp.status == 201, await resp.text()
    return digest


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data), **extra}


async def push_image(
    client: Client, name: str, tag: str | None, layers: list[bytes], **fields: Any
) -> tuple[str, bytes]:
    """Push blobs and an OCI image manifest; returns the manifest's digest and bytes."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": len(layers)}).encode()
    await push_blob(client, name, config)
    for layer in layers:
        await push_blob(client, name, layer)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
        **fields,
    }
    body = json.dumps(manifest).encode()
    digest = digest_of(body)
    resp = await client.put(
        f"/v2/{name}/manifests/{tag or digest}",
        data=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert resp.status == 201, await resp.text()
    return digest, body


async def error_code(resp: Any) -> str:
    body = await resp.json()
    return str(body["errors"][0]["code"])
