"""For the web page tests: a browser-like client (cookies, CSRF tokens from forms) and pushes of
images with real configs, multi-platform indexes and referrers.

The pushes speak plain HTTP to /v2 through any client with `post` and `put` on paths (the
in-process TestClient, or an aiohttp session with a base_url against a real server).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from tests.metadata.helpers import Api, Client, repository_of
from tests.registry.helpers import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    digest_of,
)

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM_TYPE = "application/spdx+json"


def build_config(arch: str = "amd64", *, marker: str = "") -> dict[str, Any]:
    """An image config as `docker build` writes one: run settings and a history of 4 steps, of
    which 2 made layers. `marker` goes into every free-text field (for XSS tests)."""
    return {
        "architecture": arch,
        "os": "linux",
        "created": "2024-05-01T10:00:00Z",
        "config": {
            "Entrypoint": ["/usr/bin/wordcount"],
            "Cmd": ["--input", "/data/in.txt"],
            "WorkingDir": "/srv/wordcount",
            "User": "counter",
            "Env": ["PATH=/usr/local/bin:/usr/bin", f"GREETING=hello{marker}"],
            "Labels": {"org.opencontainers.image.source": f"https://example.org/wc{marker}"},
            "ExposedPorts": {"8080/tcp": {}},
        },
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [
            {"created_by": "/bin/sh -c #(nop) ADD file:base in / "},
            {"created_by": "/bin/sh -c #(nop) ENV GREETING=hello", "empty_layer": True},
            {"created_by": f"RUN make install{marker}"},
            {"created_by": '/bin/sh -c #(nop)  CMD ["--input"]', "empty_layer": True},
        ],
    }


async def _ok(resp: Any, status: int = 201) -> None:
    assert resp.status == status, await resp.text()
    resp.release()


async def push_blob(http: Any, repository: str, data: bytes, headers: dict[str, str]) -> None:
    resp = await http.post(
        f"/v2/{repository}/blobs/uploads/", params={"digest": digest_of(data)}, data=data,
        headers=headers,
    )  # fmt: skip
    await _ok(resp)


async def put_manifest(
    http: Any, repository: str, reference: str | None, document: dict[str, Any],
    headers: dict[str, str],
) -> str:  # fmt: skip
    body = json.dumps(document).encode()
    digest = digest_of(body)
    resp = await http.put(
        f"/v2/{repository}/manifests/{reference or digest}", data=body,
        headers={"Content-Type": document["mediaType"], **headers},
    )  # fmt: skip
    await _ok(resp)
    return digest


async def push_built(
    http: Any, repository: str, headers: dict[str, str], config: dict[str, Any],
    layers: list[bytes], tag: str | None = "latest",
) -> tuple[str, int]:  # fmt: skip
    """An image manifest over `config` and `layers`: its digest and config+layers size."""
    raw = json.dumps(config).encode()
    for blob in (raw, *layers):
        await push_blob(http, repository, blob, headers)
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, raw),
        "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
    }  # fmt: skip
    digest = await put_manifest(http, repository, tag, manifest, headers)
    return digest, len(raw) + sum(map(len, layers))


async def push_index(
    http: Any, repository: str, headers: dict[str, str], arches: list[str], marker: str = ""
) -> str:
    """A multi-platform index (one image per architecture) tagged `latest`."""
    children = []
    for arch in arches:
        layers = [f"{arch} base\n".encode() * 50, f"{arch} app\n".encode() * 20]
        config = build_config(arch, marker=marker)
        digest, _ = await push_built(http, repository, headers, config, layers, tag=None)
        children.append({"digest": digest, "arch": arch})
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": c["digest"], "size": 500,
             "platform": {"os": "linux", "architecture": c["arch"]}}
            for c in children
        ],
    }  # fmt: skip
    return await put_manifest(http, repository, "latest", index, headers)


async def push_referrer(
    http: Any, repository: str, headers: dict[str, str], subject: str, artifact_type: str
) -> str:
    """An artifact about `subject` (as cosign or oras push one): empty config, one layer."""
    empty, payload = b"{}", json.dumps({"about": subject}).encode()
    for blob in (empty, payload):
        await push_blob(http, repository, blob, headers)
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
        "config": descriptor("application/vnd.oci.empty.v1+json", empty),
        "layers": [descriptor(artifact_type, payload)],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1},
    }  # fmt: skip
    return await put_manifest(http, repository, None, manifest, headers)


async def committed_image(
    api: Api, name: str, *, arches: list[str] | None = None, referrer: bool = False,
    marker: str = "", **body: Any,
) -> dict[str, Any]:  # fmt: skip
    """An image created, pushed (one platform, or an index of `arches`) and committed."""
    image = await api.create_image(name, **body)
    repository = repository_of(image)
    headers = api.admin_basic
    if arches:
        digest = await push_index(api.client, repository, headers, arches, marker)
    else:
        layers = [b"base layer\n" * 300, b"app layer\n" * 100]
        config = build_config(marker=marker)
        digest, _ = await push_built(api.client, repository, headers, config, layers)
    if referrer:
        await push_referrer(api.client, repository, headers, digest, SIGNATURE_TYPE)
    committed: dict[str, Any] = await api.ok(
        "PATCH", f"/images/{image['id']}", json_body={"commit": True}
    )
    return committed


@dataclass
class Browser:
    """The in-process client as a browser: it keeps cookies and sends forms' CSRF tokens."""

    client: Client
    last_page: str = field(default="")

    async def get(self, path: str) -> tuple[int, str]:
        resp = await self.client.get(path)
        self.last_page = await resp.text()
        return resp.status, self.last_page

    async def page(self, path: str) -> str:
        status, text = await self.get(path)
        assert status == 200, f"{path}: {status} {text[:2000]}"
        return text

    def csrf(self) -> str:
        match = _CSRF.search(self.last_page)
        assert match, "the last page has no form with a CSRF token"
        return match.group(1)

    async def post(
        self, path: str, data: dict[str, str], *, csrf_from: str | None = None,
        with_csrf: bool = True, follow: bool = False,
    ) -> tuple[int, str, str | None]:  # fmt: skip
        """POST a form as page `csrf_from` (else the last page) would: status, body, Location."""
        if with_csrf:
            if csrf_from is not None:
                await self.get(csrf_from)
            data = {"csrf": self.csrf(), **data}
        resp = await self.client.post(path, data=data, allow_redirects=follow)
        text = await resp.text()
        return resp.status, text, resp.headers.get("Location")

    async def sign_in(self, token: str) -> None:
        status, text, location = await self.post(
            "/signin", {"token": token, "next": "/"}, csrf_from="/signin"
        )
        assert status == 303 and location == "/", f"{status} {text[:2000]}"

    async def sign_out(self) -> None:
        status, _, _ = await self.post("/signout", {}, csrf_from="/")
        assert status == 303

    def forget(self) -> None:
        """Drop every cookie, as a new browser would start."""
        self.client.session.cookie_jar.clear()
