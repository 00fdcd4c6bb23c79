from __future__ import annotations

import json
from typing import Any

import pytest

from tests.registry.helpers import (
    OCI_INDEX,
    OCI_MANIFEST,
    Client,
    descriptor,
    digest_of,
    error_code,
    push_blob,
    push_image,
)

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
EMPTY = "application/vnd.oci.empty.v1+json"


async def test_manifest_round_trip_by_tag_and_digest(client: Client) -> None:
    digest, body = await push_image(client, "tester/img/app", "v1", [b"layer-a"])
    for ref in ("v1", digest):
        resp = await client.get(
            f"/v2/tester/img/app/manifests/{ref}", headers={"Accept": OCI_MANIFEST}
        )
        assert resp.status == 200
        assert await resp.read() == body
        assert resp.headers["Docker-Content-Digest"] == digest
        assert resp.headers["Content-Type"] == OCI_MANIFEST
    head = await client.head("/v2/tester/img/app/manifests/v1")
    assert head.status == 200
    assert head.headers["Content-Length"] == str(len(body))


async def test_manifest_with_missing_blob_is_refused(client: Client) -> None:
    config = b"{}"
    await push_blob(client, "tester/missing", config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", b"never pushed")],
    }
    resp = await client.put(
        "/v2/tester/missing/manifests/latest",
        data=json.dumps(manifest),
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert resp.status == 400
    assert await error_code(resp) == "MANIFEST_BLOB_UNKNOWN"


async def test_malformed_manifests_are_manifest_invalid(client: Client) -> None:
    for body in (
        b"not json",
        b"[1,2]",
        b"\xff\xfe\x00",
        b"[" * 100000 + b"]" * 100000,
        json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": 5}, "layers": "x"}
        ).encode(),
    ):
        resp = await client.put(
            "/v2/tester/bad/manifests/latest", data=body, headers={"Content-Type": OCI_MANIFEST}
        )
        assert resp.status in (400, 413), body[:20]
        assert await error_code(resp) == "MANIFEST_INVALID"


async def test_manifest_over_four_mib_is_refused(client: Client) -> None:
    body = b'{"pad":"' + b"x" * (4 << 20) + b'"}'
    resp = await client.put(
        "/v2/tester/big/manifests/latest", data=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert resp.status == 413


async def test_put_by_wrong_digest_is_digest_invalid(client: Client) -> None:
    _digest, body = await push_image(client, "tester/wrong", "t", [b"l"])
    resp = await client.put(
        f"/v2/tester/wrong/manifests/{digest_of(b'other')}",
        data=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert resp.status == 400
    assert await error_code(resp) == "DIGEST_INVALID"


async def test_overwriting_a_tag_moves_it(client: Client) -> None:
    first, _ = await push_image(client, "tester/move", "latest", [b"one"])
    second, _ = await push_image(client, "tester/move", "latest", [b"two"])
    resp = await client.get("/v2/tester/move/manifests/latest", headers={"Accept": OCI_MANIFEST})
    assert resp.headers["Docker-Content-Digest"] == second
    assert (await client.get(f"/v2/tester/move/manifests/{first}")).status == 200


async def test_delete_by_tag_keeps_manifest_and_by_digest_removes_its_tags(client: Client) -> None:
    digest, _ = await push_image(client, "tester/rm", "a", [b"x"])
    await client.put(
        "/v2/tester/rm/manifests/b",
        data=(await (await client.get(f"/v2/tester/rm/manifests/{digest}")).read()),
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert (await client.delete("/v2/tester/rm/manifests/a")).status == 202
    assert (await client.get("/v2/tester/rm/manifests/a")).status == 404
    assert (await client.get("/v2/tester/rm/manifests/b")).status == 200
    assert (await client.delete(f"/v2/tester/rm/manifests/{digest}")).status == 202
    resp = await client.get("/v2/tester/rm/manifests/b")
    assert resp.status == 404
    assert await error_code(resp) == "MANIFEST_UNKNOWN"


async def test_index_requires_its_manifests_in_the_repository(client: Client) -> None:
    _amd, amd_body = await push_image(client, "tester/multi", None, [b"amd"])
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                **descriptor(OCI_MANIFEST, amd_body),
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            descriptor(OCI_MANIFEST, b"unknown manifest"),
        ],
    }
    resp = await client.put(
        "/v2/tester/multi/manifests/latest",
        data=json.dumps(index),
        headers={"Content-Type": OCI_INDEX},
    )
    assert await error_code(resp) == "MANIFEST_BLOB_UNKNOWN"
    index["manifests"] = index["manifests"][:1]
    resp = await client.put(
        "/v2/tester/multi/manifests/latest",
        data=json.dumps(index),
        headers={"Content-Type": OCI_INDEX},
    )
    assert resp.status == 201
    only_manifests = await client.get(
        "/v2/tester/multi/manifests/latest", headers={"Accept": OCI_MANIFEST}
    )
    assert only_manifests.status == 404
    ok = await client.get(
        "/v2/tester/multi/manifests/latest", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}
    )
    assert ok.status == 200


async def test_docker_schema2_manifest_and_list(client: Client) -> None:
    config, layer = b'{"os":"linux"}', b"docker layer"
    await push_blob(client, "tester/dock", config)
    await push_blob(client, "tester/dock", layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": descriptor("application/vnd.docker.container.image.v1+json", config),
            "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", layer)],
        }
    ).encode()
    resp = await client.put(
        "/v2/tester/dock/manifests/v1", data=manifest, headers={"Content-Type": DOCKER_MANIFEST}
    )
    assert resp.status == 201
    listing = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": [descriptor(DOCKER_MANIFEST, manifest)],
        }
    ).encode()
    resp = await client.put(
        "/v2/tester/dock/manifests/list", data=listing, headers={"Content-Type": DOCKER_LIST}
    )
    assert resp.status == 201
    got = await client.get("/v2/tester/dock/manifests/list", headers={"Accept": DOCKER_LIST})
    assert got.headers["Content-Type"] == DOCKER_LIST


async def test_artifact_with_subject_is_listed_as_referrer(client: Client) -> None:
    subject, subject_body = await push_image(client, "tester/art", "latest", [b"base"])
    await push_blob(client, "tester/art", b"{}")
    sig = b"signature"
    await push_blob(client, "tester/art", sig)
    artifact = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": descriptor(EMPTY, b"{}"),
        "layers": [descriptor("application/octet-stream", sig)],
        "subject": descriptor(OCI_MANIFEST, subject_body),
        "annotations": {"org.example": "yes"},
    }
    body = json.dumps(artifact).encode()
    resp = await client.put(
        f"/v2/tester/art/manifests/{digest_of(body)}",
        data=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert resp.status == 201
    assert resp.headers["OCI-Subject"] == subject
    listed = await client.get(f"/v2/tester/art/referrers/{subject}")
    assert listed.status == 200
    assert listed.headers["Content-Type"] == OCI_INDEX
    index = await listed.json()
    assert index["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": digest_of(body),
            "size": len(body),
            "artifactType": "application/vnd.example.sig",
            "annotations": {"org.example": "yes"},
        }
    ]
    filtered = await client.get(
        f"/v2/tester/art/referrers/{subject}", params={"artifactType": "application/other"}
    )
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert (await filtered.json())["manifests"] == []


async def test_tag_list_and_catalog_paginate_in_lexical_order(client: Client) -> None:
    _digest, body = await push_image(client, "tester/pages/repo", "b", [b"p"])
    for tag in ("c", "a", "d"):
        await client.put(
            f"/v2/tester/pages/repo/manifests/{tag}",
            data=body,
            headers={"Content-Type": OCI_MANIFEST},
        )
    first = await client.get("/v2/tester/pages/repo/tags/list", params={"n": "2"})
    assert (await first.json())["tags"] == ["a", "b"]
    assert first.headers["Link"] == '</v2/tester/pages/repo/tags/list?n=2&last=b>; rel="next"'
    second = await client.get("/v2/tester/pages/repo/tags/list", params={"n": "2", "last": "b"})
    assert (await second.json())["tags"] == ["c", "d"]
    assert "Link" not in second.headers
    unknown = await client.get("/v2/tester/never/pushed/tags/list")
    assert await error_code(unknown) == "NAME_UNKNOWN"
    bad = await client.get("/v2/tester/pages/repo/tags/list", params={"n": "-1"})
    assert bad.status == 400
    await push_image(client, "tester/pages/another", "x", [b"q"])
    catalog = await client.get("/v2/_catalog", params={"n": "1"})
    assert (await catalog.json())["repositories"] == ["tester/pages/another"]
    assert "last=tester%2Fpages%2Fanother" in catalog.headers["Link"]


async def test_unknown_endpoint_and_method_give_json_errors(client: Client) -> None:
    resp = await client.get("/v2/foo/bar/nothing")
    assert resp.status == 404
    assert await error_code(resp) == "NAME_UNKNOWN"
    resp = await client.post("/v2/tester/foo/manifests/latest")
    assert resp.status == 405
    assert await error_code(resp) == "UNSUPPORTED"


async def test_blob_collected_between_check_and_store_is_manifest_blob_unknown(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry import manifest_routes

    check = manifest_routes._check_references

    async def check_then_collect(request: Any, ctx: Any, name: str, parsed: Any) -> None:
        await check(request, ctx, name, parsed)
        async with ctx.repositories.db.transaction() as conn:  # what a GC pass would do
            await conn.execute(
                "DELETE FROM repository_blobs WHERE digest = ?", (digest_of(b"gone"),)
            )
            await conn.execute("DELETE FROM blobs WHERE digest = ?", (digest_of(b"gone"),))

    monkeypatch.setattr(manifest_routes, "_check_references", check_then_collect)
    config = b"{}"
    await push_blob(client, "tester/raced", config)
    await push_blob(client, "tester/raced", b"gone")
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", b"gone")],
    })  # fmt: skip
    resp = await client.put(
        "/v2/tester/raced/manifests/v1", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert resp.status == 400
    assert await error_code(resp) == "MANIFEST_BLOB_UNKNOWN"


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
async def test_a_reference_no_tag_can_have_is_an_unknown_manifest(
    client: Client, method: str
) -> None:
    """The OCI conformance suite asks for `.INVALID_MANIFEST_NAME` and expects a 404."""
    await push_image(client, "tester/refs", "v1", [b"r"])
    for reference in (".INVALID_MANIFEST_NAME", "latest%0A", "-dash"):
        resp = await client.request(method, f"/v2/tester/refs/manifests/{reference}")
        assert resp.status == 404, (method, reference)
        if method != "HEAD":
            assert await error_code(resp) == "MANIFEST_UNKNOWN"


async def test_a_tag_with_a_final_newline_is_refused_on_push(client: Client) -> None:
    digest, body = await push_image(client, "tester/newline", "v1", [b"n"])
    resp = await client.put(
        "/v2/tester/newline/manifests/latest%0A",
        data=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert resp.status == 400
    assert await error_code(resp) == "TAG_INVALID"
    for name in ("tester/newline%0A", "tester%0A/newline"):
        resp = await client.get(f"/v2/{name}/tags/list")
        assert resp.status in {400, 404}
        assert await error_code(resp) in {"NAME_INVALID", "NAME_UNKNOWN"}
    bad_digest = await client.get(f"/v2/tester/newline/manifests/{digest}%0A")
    assert await error_code(bad_digest) == "DIGEST_INVALID"
