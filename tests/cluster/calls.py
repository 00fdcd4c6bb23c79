"""Plain HTTP calls to a cluster (or one replica): JSON APIs, and images pushed and pulled by
hand, with the bootstrap token as HTTP Basic credentials (/v2 accepts them)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def call(
    url: str,
    method: str = "GET",
    auth: str = "",
    body: Any = None,
    *,
    raw: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    """(status, body): parsed JSON when it is JSON, the bytes otherwise (and of an error),
    None when empty."""
    data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if auth:
        # Not sent on to where a redirect points (a presigned S3 URL carries its own).
        request.add_unredirected_header("Authorization", auth)
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            content = answer.read()
            if not content:
                return answer.status, None
            if answer.headers.get("Content-Type", "").startswith("application/json"):
                return answer.status, json.loads(content)
            return answer.status, content
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Image:
    repository: str
    tag: str
    manifest: bytes
    blobs: dict[str, bytes]  # config and layers, by digest

    @property
    def digest(self) -> str:
        return sha256(self.manifest)


def push_image(url: str, auth: str, repository: str, tag: str, layer_sizes: list[int]) -> Image:
    """A new image of random layers: each blob in one POST, then the manifest by tag."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": os.urandom(8).hex()})
    blobs = {sha256(b): b for b in [config.encode(), *(os.urandom(n) for n in layer_sizes)]}
    for digest, data in blobs.items():
        status, _ = call(
            f"{url}/v2/{repository}/blobs/uploads/?digest={digest}",
            "POST",
            auth,
            raw=data,
            content_type="application/octet-stream",
        )
        assert status == 201, (status, digest)
    digests = list(blobs)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digests[0],
                "size": len(blobs[digests[0]]),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": d,
                    "size": len(blobs[d]),
                }
                for d in digests[1:]
            ],
        }
    ).encode()
    status, _ = call(
        f"{url}/v2/{repository}/manifests/{tag}",
        "PUT",
        auth,
        raw=manifest,
        content_type=OCI_MANIFEST,
    )
    assert status == 201, (status, _)
    return Image(repository, tag, manifest, blobs)


def pulls_back_whole(url: str, auth: str, image: Image) -> bool:
    """Whether the tag still names the same manifest and every blob comes back intact."""
    status, manifest = call(f"{url}/v2/{image.repository}/manifests/{image.tag}", auth=auth)
    if status != 200 or sha256(manifest) != image.digest:
        return False
    for digest in image.blobs:
        status, data = call(f"{url}/v2/{image.repository}/blobs/{digest}", auth=auth)
        if status != 200 or sha256(data) != digest:
            return False
    return True
