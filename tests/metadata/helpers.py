"""A thin /api/v3 client for the tests, and small pushes through /v2."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from metadata.accounts import create_account
from metadata.context import METADATA
from metadata.records import Account
from storage.database import Database
from tests.registry.helpers import OCI_MANIFEST, basic, descriptor, digest_of, push_blob

Client = TestClient[Any, Any]
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass
class Api:
    client: Client
    token: str

    @property
    def db(self) -> Database:
        db: Database = self.client.app[METADATA].db
        return db

    @property
    def admin_basic(self) -> dict[str, str]:
        """The bootstrap admin's login for /v2, where it may push anywhere."""
        return basic("tester", self.token)

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token or self.token}",
            "Content-Type": "application/json",
        }

    async def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        json_body: Any = None,
        **kwargs: Any,
    ) -> ClientResponse:
        """A request to `/api/v3` + path; `path` is sent as is (already encoded)."""
        data = json.dumps(json_body).encode() if json_body is not None else None
        return await self.client.request(
            method, "/api/v3" + path, headers=self.headers(token), data=data, **kwargs
        )

    async def ok(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        resp = await self.call(method, path, token, **kw)
        assert resp.status == 200, f"{method} {path}: {resp.status} {await resp.text()}"
        return await resp.json()

    async def create_image(
        self, name: str, token: str | None = None, **body: Any
    ) -> dict[str, Any]:
        body.setdefault("workspace", "tester/default")
        body.setdefault("imageID", "sha256:" + "0" * 64)
        body.setdefault("imageTag", name)
        result: dict[str, Any] = await self.ok(
            "POST", "/images", token, params={"name": name}, json_body=body
        )
        return result

    async def push_credentials(
        self, image: dict[str, Any], token: str | None = None
    ) -> tuple[str, str]:
        """The user and password `GET /images/{id}/repository?upload=true` mints."""
        repo = await self.ok("GET", f"/images/{image['id']}/repository?upload=true", token)
        return repo["auth"]["user"], repo["auth"]["password"]

    async def new_account(self, name: str, admin: bool = False) -> tuple[Account, str]:
        return await create_account(self.db, name, admin=admin)


class GatedBody:
    """A request body sent in two parts, the second only once the test releases it.

    The server has begun the request (its early checks are done) when the first part is out:
    what the test does meanwhile lands while the body is still arriving.
    """

    def __init__(self, first: bytes, rest: bytes) -> None:
        self.parts = (first, rest)
        self.first_part_sent = asyncio.Event()
        self.release = asyncio.Event()

    @property
    def whole(self) -> bytes:
        return b"".join(self.parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.parts[0]
        # Give the server time to take the first part and start reading the body.
        await asyncio.sleep(0.2)
        self.first_part_sent.set()
        await self.release.wait()
        yield self.parts[1]


def repository_of(image: dict[str, Any]) -> str:
    """The internal repository from an image's dockerTag (`host:port/repo`)."""
    return str(image["dockerTag"]).split("/", 1)[1]


async def push_latest(
    client: Client, repository: str, layers: list[bytes], headers: dict[str, str] | None = None
) -> tuple[str, int]:
    """Push a small image as `repository:latest`; returns its digest and config+layers size."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": len(layers)}).encode()
    headers = headers or {}
    for blob in (config, *layers):
        resp = await client.post(
            f"/v2/{repository}/blobs/uploads/",
            params={"digest": digest_of(blob)},
            data=blob,
            headers=headers,
        )
        assert resp.status == 201, await resp.text()
    body = manifest_bytes(config, layers)
    resp = await put_manifest(client, repository, "latest", body, headers)
    assert resp.status == 201, await resp.text()
    return digest_of(body), len(config) + sum(len(layer) for layer in layers)


def manifest_bytes(config: bytes, layers: list[bytes]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
        }
    ).encode()


async def put_manifest(
    client: Client,
    repository: str,
    reference: str,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> ClientResponse:
    return await client.put(
        f"/v2/{repository}/manifests/{reference}",
        data=body,
        headers={"Content-Type": OCI_MANIFEST, **(headers or {})},
    )


__all__ = [
    "Api",
    "GatedBody",
    "basic",
    "digest_of",
    "push_blob",
    "push_latest",
    "put_manifest",
    "repository_of",
]
