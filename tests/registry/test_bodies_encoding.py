"""Registry bodies are taken only as sent: any Content-Encoding is refused with 415 UNSUPPORTED
before a byte is stored, and a compressed form body on /v2/token stays capped once inflated."""

from __future__ import annotations

import gzip
import json
import resource
import zlib
from typing import Any

import brotli
import pytest
from aiohttp.test_utils import TestClient
from backports import zstd

from tests.registry.bombs import CORRUPT_GZIP, gzip_bomb
from tests.registry.helpers import OCI_MANIFEST, digest_of, error_code

Client = TestClient[Any, Any]
REPO = "tester/enc/bodies"
BLOB = b"layer bytes " * 1000
# Those aiohttp inflates, and those it passes through untouched: all are refused.
# br and zstd too: without their decoders aiohttp's parser would answer them itself, in plain
# text, before any handler (beakerd depends on Brotli and backports.zstd for that reason).
ENCODINGS = ["gzip", "deflate", "br", "zstd", "x-custom", "identity, gzip"]


def _encoded(encoding: str, data: bytes) -> bytes:
    if encoding == "gzip":
        return gzip.compress(data)
    if encoding == "deflate":
        return zlib.compress(data)
    if encoding == "br":
        return bytes(brotli.compress(data))
    if encoding == "zstd":
        return bytes(zstd.compress(data))
    return data


async def _assert_refused(resp: Any) -> None:
    assert resp.status == 415, await resp.text()
    assert resp.content_type == "application/json"
    assert await error_code(resp) == "UNSUPPORTED"
    assert resp.headers["Connection"] == "close"


async def _assert_no_blob(client: Client, *digests: str) -> None:
    for digest in digests:
        assert (await client.head(f"/v2/{REPO}/blobs/{digest}")).status == 404


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_a_monolithic_upload_with_a_content_encoding_is_refused_and_stores_nothing(
    client: Client, encoding: str
) -> None:
    sent = _encoded(encoding.split(", ")[-1], BLOB)
    for digest in (digest_of(sent), digest_of(BLOB)):
        resp = await client.post(
            f"/v2/{REPO}/blobs/uploads/",
            params={"digest": digest},
            data=sent,
            headers={"Content-Encoding": encoding},
        )
        await _assert_refused(resp)
    await _assert_no_blob(client, digest_of(sent), digest_of(BLOB))


async def test_identity_is_no_encoding_and_is_taken(client: Client) -> None:
    resp = await client.post(
        f"/v2/{REPO}/blobs/uploads/",
        params={"digest": digest_of(BLOB)},
        data=BLOB,
        headers={"Content-Encoding": "identity"},
    )
    assert resp.status == 201, await resp.text()


async def test_an_encoded_chunk_is_refused_and_the_session_keeps_its_offset(
    client: Client,
) -> None:
    resp = await client.post(f"/v2/{REPO}/blobs/uploads/")
    location = resp.headers["Location"]
    resp = await client.patch(location, data=b"plain", headers={"Content-Range": "0-4"})
    assert resp.status == 202
    compressed = gzip.compress(BLOB)
    await _assert_refused(
        await client.patch(location, data=compressed, headers={"Content-Encoding": "gzip"})
    )
    assert (await client.get(location)).headers["Range"] == "0-4"
    await _assert_refused(
        await client.put(
            location,
            params={"digest": digest_of(b"plain" + BLOB)},
            data=compressed,
            headers={"Content-Encoding": "gzip"},
        )
    )
    assert (await client.get(location)).headers["Range"] == "0-4"
    resp = await client.put(location, params={"digest": digest_of(b"plain" + BLOB)}, data=BLOB)
    assert resp.status == 201, await resp.text()


async def test_an_encoded_manifest_is_refused(client: Client) -> None:
    config = b"{}"
    resp = await client.post(
        f"/v2/{REPO}/blobs/uploads/", params={"digest": digest_of(config)}, data=config
    )
    assert resp.status == 201
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    compressed = gzip.compress(manifest)
    for reference in ("v1", digest_of(compressed), digest_of(manifest)):
        resp = await client.put(
            f"/v2/{REPO}/manifests/{reference}",
            data=compressed,
            headers={"Content-Type": OCI_MANIFEST, "Content-Encoding": "gzip"},
        )
        await _assert_refused(resp)
    tags = await client.get(f"/v2/{REPO}/tags/list")
    assert (await tags.json())["tags"] in ([], None)
    for digest in (digest_of(compressed), digest_of(manifest)):
        assert (await client.head(f"/v2/{REPO}/manifests/{digest}")).status == 404


async def test_a_gzip_bomb_upload_is_refused_without_inflating_it(client: Client) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    resp = await client.post(
        f"/v2/{REPO}/blobs/uploads/",
        params={"digest": digest_of(b"")},
        data=gzip_bomb(),
        headers={"Content-Encoding": "gzip"},
    )
    await _assert_refused(resp)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 256 << 10


async def test_a_gzip_bomb_token_form_is_refused_once_inflated_past_the_cap(
    client: Client,
) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    resp = await client.post(
        "/v2/token",
        data=gzip_bomb(),
        headers={
            "Content-Encoding": "gzip",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert resp.status == 413, await resp.text()
    assert await error_code(resp) == "SIZE_INVALID"
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 256 << 10


async def test_a_corrupt_gzip_token_form_is_a_json_400(client: Client) -> None:
    resp = await client.post(
        "/v2/token",
        data=CORRUPT_GZIP,
        headers={
            "Content-Encoding": "gzip",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert resp.status == 400, await resp.text()
    assert resp.content_type == "application/json"
