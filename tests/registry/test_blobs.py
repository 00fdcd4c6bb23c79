from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from beakerd.app import create_app
from beakerd.settings import Settings
from beakerd.tls import auto_certificates, server_context
from tests.backends.backend import file_store_only
from tests.registry.helpers import Client, digest_of, error_code, push_blob


async def test_monolithic_push_then_head_and_get_return_the_bytes(client: Client) -> None:
    data = os.urandom(100_000)
    digest = await push_blob(client, "tester/a/b/c", data)
    head = await client.head(f"/v2/tester/a/b/c/blobs/{digest}")
    assert head.status == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == digest
    get = await client.get(f"/v2/tester/a/b/c/blobs/{digest}")
    assert get.status == 200
    assert await get.read() == data


async def test_range_requests_answer_206_and_416(client: Client) -> None:
    data = b"0123456789" * 10
    digest = await push_blob(client, "tester/ranges", data)
    part = await client.get(f"/v2/tester/ranges/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert part.status == 206
    assert await part.read() == data[10:20]
    bad = await client.get(f"/v2/tester/ranges/blobs/{digest}", headers={"Range": "bytes=500-600"})
    assert bad.status == 416


async def test_unknown_blob_is_blob_unknown(client: Client) -> None:
    resp = await client.get(f"/v2/tester/nothing/blobs/{digest_of(b'x')}")
    assert resp.status == 404
    assert await error_code(resp) == "BLOB_UNKNOWN"


@file_store_only
async def test_digest_mismatch_stores_nothing(client: Client, tmp_path: Path) -> None:
    wrong = digest_of(b"other")
    resp = await client.post(
        "/v2/tester/mis/blobs/uploads/", params={"digest": wrong}, data=b"data"
    )
    assert resp.status == 400
    assert await error_code(resp) == "DIGEST_INVALID"
    assert (await client.head(f"/v2/tester/mis/blobs/{wrong}")).status == 404
    assert not any((tmp_path / "data" / "blobs").rglob("*.*"))
    assert list((tmp_path / "data" / "uploads").iterdir()) == []


async def test_chunked_upload_with_out_of_order_chunk_refused(client: Client) -> None:
    data = os.urandom(3000)
    start = await client.post("/v2/tester/chunky/blobs/uploads/")
    assert start.status == 202
    location = start.headers["Location"]
    first = await client.patch(
        location,
        data=data[:1000],
        headers={"Content-Range": "0-999", "Content-Type": "application/octet-stream"},
    )
    assert first.status == 202
    assert first.headers["Range"] == "0-999"
    skipped = await client.patch(
        first.headers["Location"], data=data[2000:], headers={"Content-Range": "2000-2999"}
    )
    assert skipped.status == 416
    second = await client.patch(first.headers["Location"], data=data[1000:2000])
    assert second.status == 202
    status = await client.get(second.headers["Location"])
    assert status.status == 204
    assert status.headers["Range"] == "0-1999"
    done = await client.put(
        second.headers["Location"], params={"digest": digest_of(data)}, data=data[2000:]
    )
    assert done.status == 201, await done.text()
    assert done.headers["Docker-Content-Digest"] == digest_of(data)
    get = await client.get(f"/v2/tester/chunky/blobs/{digest_of(data)}")
    assert await get.read() == data


@file_store_only
async def test_same_blob_in_two_repositories_is_stored_once(client: Client, tmp_path: Path) -> None:
    data = os.urandom(5000)
    await push_blob(client, "tester/one", data)
    await push_blob(client, "tester/two", data)
    files = [p for p in (tmp_path / "data" / "blobs").rglob("*") if p.is_file()]
    assert len(files) == 1


async def test_cross_repository_mount_links_without_upload(client: Client) -> None:
    data = os.urandom(100)
    digest = await push_blob(client, "tester/source", data)
    resp = await client.post(
        "/v2/tester/target/blobs/uploads/", params={"mount": digest, "from": "tester/source"}
    )
    assert resp.status == 201
    assert resp.headers["Location"] == f"/v2/tester/target/blobs/{digest}"
    missing = digest_of(b"never pushed")
    fallback = await client.post(
        "/v2/tester/target/blobs/uploads/", params={"mount": missing, "from": "tester/source"}
    )
    assert fallback.status == 202


async def test_delete_blob_unlinks_it(client: Client) -> None:
    digest = await push_blob(client, "tester/del", b"bye")
    assert (await client.delete(f"/v2/tester/del/blobs/{digest}")).status == 202
    resp = await client.delete(f"/v2/tester/del/blobs/{digest}")
    assert resp.status == 404


async def test_cancelled_upload_is_unknown(client: Client) -> None:
    start = await client.post("/v2/tester/cancel/blobs/uploads/")
    location = start.headers["Location"]
    assert (await client.delete(location)).status == 204
    resp = await client.get(location)
    assert resp.status == 404
    assert await error_code(resp) == "BLOB_UPLOAD_UNKNOWN"


async def test_invalid_names_and_digests_are_refused(client: Client) -> None:
    resp = await client.get(f"/v2/UPPER/blobs/{digest_of(b'')}")
    assert resp.status == 400
    assert await error_code(resp) == "NAME_INVALID"
    resp = await client.get("/v2/tester/ok/blobs/sha256:nothex")
    assert resp.status == 400
    assert await error_code(resp) == "DIGEST_INVALID"
    resp = await client.get("/v2/tester/ok/blobs/md5:d41d8cd98f00b204e9800998ecf8427e")
    assert await error_code(resp) == "DIGEST_INVALID"


@file_store_only
async def test_head_and_get_answer_blob_unknown_for_a_blob_whose_file_is_gone(
    client: Client, tmp_path: Path
) -> None:
    data = os.urandom(1000)
    digest = await push_blob(client, "tester/lost", data)
    hex_digest = digest.split(":", 1)[1]
    (tmp_path / "data" / "blobs" / "sha256" / hex_digest[:2] / hex_digest).unlink()
    # HEAD says so too, so that a client pushes the blob again instead of skipping it.
    for method in (client.head, client.get):
        assert (await method(f"/v2/tester/lost/blobs/{digest}")).status == 404
    await push_blob(client, "tester/lost", data)
    assert await (await client.get(f"/v2/tester/lost/blobs/{digest}")).read() == data


@pytest.fixture
async def tls_client(tmp_path: Path, private_home: Path) -> AsyncIterator[Client]:
    """The whole app served over TLS, where blobs stream through Python in threads."""
    app = create_app(Settings(data_dir=tmp_path / "data", bootstrap_account="tester"))
    files = auto_certificates(tmp_path / "tls", ["127.0.0.1"])
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=server_context(files))
    token = yaml.safe_load((private_home / ".beaker" / "config.yml").read_text())["user_token"]
    async with TestClient(
        server,
        headers={"Authorization": aiohttp.encode_basic_auth("tester", token)},
        connector=aiohttp.TCPConnector(ssl=False),
    ) as test_client:
        yield test_client


async def test_a_corrupt_blob_streamed_over_tls_is_cut_short_and_taken_out(
    tls_client: Client, tmp_path: Path
) -> None:
    data = os.urandom(3 << 20)  # several stream chunks
    digest = await push_blob(tls_client, "tester/rot", data)
    hex_digest = digest.split(":", 1)[1]
    path = tmp_path / "data" / "blobs" / "sha256" / hex_digest[:2] / hex_digest
    assert await (await tls_client.get(f"/v2/tester/rot/blobs/{digest}")).read() == data
    rotten = bytearray(data)
    rotten[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(rotten))
    # A range is not checked (the digest covers the whole blob) and is served as stored.
    part = await tls_client.get(f"/v2/tester/rot/blobs/{digest}", headers={"Range": "bytes=0-9"})
    assert await part.read() == data[:10]

    resp = await tls_client.get(f"/v2/tester/rot/blobs/{digest}")
    assert resp.status == 200
    received = 0
    with contextlib.suppress(aiohttp.ClientError):
        async for chunk in resp.content.iter_any():
            received += len(chunk)
    assert received < len(data)  # never the whole wrong body
    assert not path.exists()
    assert len(list((tmp_path / "data" / "lost+found").iterdir())) == 1
    assert (await tls_client.head(f"/v2/tester/rot/blobs/{digest}")).status == 404
    await push_blob(tls_client, "tester/rot", data)
    assert await (await tls_client.get(f"/v2/tester/rot/blobs/{digest}")).read() == data
