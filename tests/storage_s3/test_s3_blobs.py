"""The S3 blob store against a real SeaweedFS: pushes, pulls, replicas, GC and fsck."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import aiohttp
import pytest

from beakerd.app import BLOB_BACKEND, DATABASE
from registry.relay import NotRelayable
from storage.blobstore.s3_uploads import PART_MIN, S3UploadSessions
from storage.blobstore.s3client import S3Bucket
from storage.digests import Digest
from storage.gc import GarbageCollector, GcPolicy
from tests.backends.seaweedfs import SeaweedFS
from tests.registry.helpers import push_blob, push_image
from tests.storage_s3.conftest import Client, Replica

MiB = 1 << 20


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def bucket_of(client: Client) -> S3Bucket:
    bucket = client.app[BLOB_BACKEND].bucket
    assert bucket is not None
    return bucket


def blob_key(client: Client, digest: str) -> str:
    keys = client.app[BLOB_BACKEND].keys
    assert keys is not None
    return keys.blob(Digest.parse(digest))


async def follow(response: aiohttp.ClientResponse, **headers: str) -> tuple[int, bytes]:
    """Fetch a 307's Location as a client does: without the registry's credentials."""
    assert response.status == 307, await response.text()
    async with aiohttp.ClientSession() as session:
        async with session.get(response.headers["Location"], headers=headers) as answer:
            return answer.status, await answer.read()


async def chunked_push(client: Client, name: str, chunks: list[bytes], last: bytes = b"") -> str:
    data = b"".join(chunks) + last
    digest = digest_of(data)
    start = await client.post(f"/v2/{name}/blobs/uploads/")
    assert start.status == 202
    location = start.headers["Location"]
    offset = 0
    for chunk in chunks:
        end = offset + len(chunk) - 1
        resp = await client.patch(
            location,
            data=chunk,
            headers={
                "Content-Range": f"{offset}-{end}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert resp.status == 202, await resp.text()
        assert resp.headers["Range"] == f"0-{end}"
        offset += len(chunk)
        location = resp.headers["Location"]
    done = await client.put(location, params={"digest": digest}, data=last)
    assert done.status == 201, await done.text()
    return digest


async def test_monolithic_push_is_stored_once_at_its_digest_and_pulled_by_redirect(
    s3_client: Client,
) -> None:
    data = os.urandom(300_000)
    digest = await push_blob(s3_client, "tester/mono", data)
    await push_blob(s3_client, "tester/again", data)
    stored = [o async for o in bucket_of(s3_client).list_objects(blob_key(s3_client, digest))]
    assert [(o.key, o.size) for o in stored] == [(blob_key(s3_client, digest), len(data))]
    head = await s3_client.head(f"/v2/tester/mono/blobs/{digest}")
    assert head.status == 200
    assert head.headers["Content-Length"] == str(len(data))
    get = await s3_client.get(f"/v2/tester/mono/blobs/{digest}", allow_redirects=False)
    assert await follow(get) == (200, data)


async def test_big_monolithic_push_goes_to_its_address_through_a_multipart_upload(
    s3_client: Client,
) -> None:
    data = os.urandom(19 * MiB)
    digest = await push_blob(s3_client, "tester/big", data)
    get = await s3_client.get(f"/v2/tester/big/blobs/{digest}", allow_redirects=False)
    assert await follow(get) == (200, data)
    assert [u async for u in bucket_of(s3_client).list_multipart("")] == []


async def test_monolithic_push_with_a_wrong_digest_is_refused_and_leaves_nothing(
    s3_client: Client,
) -> None:
    data = os.urandom(11 * MiB)
    wrong = digest_of(b"something else")
    resp = await s3_client.post(
        "/v2/tester/wrong/blobs/uploads/", params={"digest": wrong}, data=data
    )
    assert resp.status == 400
    assert (await resp.json())["errors"][0]["code"] == "DIGEST_INVALID"
    prefix = client_prefix(s3_client)
    assert [o async for o in bucket_of(s3_client).list_objects(prefix)] == []
    assert [u async for u in bucket_of(s3_client).list_multipart(prefix)] == []


def client_prefix(client: Client) -> str:
    keys = client.app[BLOB_BACKEND].keys
    assert keys is not None
    return keys.prefix


@pytest.mark.parametrize(
    "sizes",
    [
        [100_000, 2 * MiB, 300_000],  # every chunk under the 5 MiB part minimum
        [6 * MiB, 1, 5 * MiB - 1, 9 * MiB],  # parts, a one-byte tail, a tail that fills one
        [17 * MiB],  # one chunk that makes two parts as it streams, then a small last one
    ],
)
async def test_chunked_push_below_and_above_the_part_minimum_pulls_back_whole(
    s3_client: Client, sizes: list[int]
) -> None:
    chunks = [os.urandom(n) for n in sizes]
    digest = await chunked_push(s3_client, "tester/chunks", chunks, last=os.urandom(1000))
    data = b"".join(chunks)
    get = await s3_client.get(f"/v2/tester/chunks/blobs/{digest}", allow_redirects=False)
    status, body = await follow(get)
    assert status == 200
    assert body[: len(data)] == data and len(body) == len(data) + 1000
    prefix = client_prefix(s3_client)
    assert [o async for o in bucket_of(s3_client).list_objects(prefix + "uploads/")] == []
    assert [u async for u in bucket_of(s3_client).list_multipart(prefix)] == []


async def blob_objects(client: Client) -> list[tuple[str, int]]:
    keys = client.app[BLOB_BACKEND].keys
    assert keys is not None
    return [(o.key, o.size) async for o in bucket_of(client).list_objects(keys.blobs)]


async def test_chunked_push_is_completed_where_its_parts_went_never_copied(
    s3_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    copied: list[str] = []
    copy = S3Bucket.copy

    async def spy_copy(self: S3Bucket, source: str, target: str, size: int) -> None:
        copied.append(source)
        await copy(self, source, target, size)

    monkeypatch.setattr(S3Bucket, "copy", spy_copy)
    chunks = [os.urandom(6 * MiB), os.urandom(3 * MiB)]
    data = b"".join(chunks)
    digest = await chunked_push(s3_client, "tester/inplace", chunks)
    assert copied == []
    [(key, size)] = await blob_objects(s3_client)
    assert "/by-upload/" in key and size == len(data)
    for redirect in (True, False):
        s3_client.app[BLOB_BACKEND].reader.redirect = redirect  # type: ignore[attr-defined]
        get = await s3_client.get(f"/v2/tester/inplace/blobs/{digest}", allow_redirects=False)
        if redirect:
            assert await follow(get) == (200, data)
        else:
            assert get.status == 200 and await get.read() == data
    # The same blob pushed again in chunks: the row keeps its object, the new one goes.
    assert await chunked_push(s3_client, "tester/again", chunks) == digest
    assert await blob_objects(s3_client) == [(key, size)]
    prefix = client_prefix(s3_client)
    assert [u async for u in bucket_of(s3_client).list_multipart(prefix)] == []


async def test_a_session_cancelled_after_its_blob_was_published_keeps_the_blob(
    s3_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(6 * MiB)
    start = await s3_client.post("/v2/tester/cut/blobs/uploads/")
    location = start.headers["Location"]
    assert (await s3_client.patch(location, data=data)).status == 202
    drop = S3UploadSessions._drop

    async def killed(self: S3UploadSessions, upload_id: str, state: Any) -> None:
        raise RuntimeError("killed after the blob's row committed")

    monkeypatch.setattr(S3UploadSessions, "_drop", killed)
    cut = await s3_client.put(location, params={"digest": digest_of(data)})
    assert cut.status == 500
    monkeypatch.setattr(S3UploadSessions, "_drop", drop)
    # The client gives up on the session rather than retry the PUT.
    assert (await s3_client.delete(location)).status == 204
    get = await s3_client.get(f"/v2/tester/cut/blobs/{digest_of(data)}", allow_redirects=False)
    assert await follow(get) == (200, data)


async def test_chunks_landing_on_another_replica_continue_without_reading_parts_back(
    replica: Replica, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []
    get_bytes, ranged = S3Bucket.get_bytes, S3Bucket.read

    async def spy_get_bytes(self: S3Bucket, key: str) -> bytes:
        read.append(key)
        return await get_bytes(self, key)

    def spy_read(self: S3Bucket, key: str, start: int, length: int) -> Any:
        read.append(key)
        return ranged(self, key, start, length)

    monkeypatch.setattr(S3Bucket, "get_bytes", spy_get_bytes)
    monkeypatch.setattr(S3Bucket, "read", spy_read)
    chunks = [os.urandom(7 * MiB), os.urandom(MiB), os.urandom(6 * MiB), os.urandom(100_000)]
    data = b"".join(chunks)
    async with replica() as a, replica() as b:
        start = await a.post("/v2/tester/replicas/blobs/uploads/")
        location, offset = start.headers["Location"], 0
        for chunk, client in zip(chunks[:3], (a, b, a), strict=True):
            resp = await client.patch(
                location,
                data=chunk,
                headers={"Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
            )
            assert resp.status == 202, await resp.text()
            offset += len(chunk)
        done = await b.put(location, params={"digest": digest_of(data)}, data=chunks[3])
        assert done.status == 201, await done.text()
        # Only the second chunk, a 1 MiB tail, was ever read back (to make a part with the
        # third): never a part, never the assembled upload.
        assert len(read) == 1 and f"/tail-{7 * MiB + MiB}-" in read[0]
        get = await a.get(f"/v2/tester/replicas/blobs/{digest_of(data)}", allow_redirects=False)
        assert await follow(get) == (200, data)


async def test_range_is_served_by_the_redirect_and_by_the_stream(replica: Replica) -> None:
    data = os.urandom(PART_MIN + 12345)
    async with replica() as redirecting:
        digest = await push_blob(redirecting, "tester/ranges", data)
        get = await redirecting.get(
            f"/v2/tester/ranges/blobs/{digest}",
            headers={"Range": "bytes=100-199"},
            allow_redirects=False,
        )
        assert await follow(get, Range="bytes=100-199") == (206, data[100:200])
    async with replica(blob_redirect=False) as streaming:
        url = f"/v2/tester/ranges/blobs/{digest}"
        whole = await streaming.get(url)
        assert whole.status == 200
        assert await whole.read() == data
        part = await streaming.get(url, headers={"Range": "bytes=5242000-5242999"})
        assert part.status == 206
        assert part.headers["Content-Range"] == f"bytes 5242000-5242999/{len(data)}"
        assert await part.read() == data[5242000:5243000]
        suffix = await streaming.get(url, headers={"Range": "bytes=-10"})
        assert await suffix.read() == data[-10:]
        past = await streaming.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert past.status == 416
        head = await streaming.head(url)
        assert head.headers["Content-Length"] == str(len(data))


async def test_streamed_pull_is_relayed_socket_to_socket_and_falls_back_to_chunks(
    replica: Replica, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []
    ranged = S3Bucket.read

    def spy_read(self: S3Bucket, key: str, start: int, length: int) -> Any:
        read.append(key)
        return ranged(self, key, start, length)

    monkeypatch.setattr(S3Bucket, "read", spy_read)
    data = os.urandom(3 * MiB + 17)
    async with replica(blob_redirect=False) as client:
        digest = await push_blob(client, "tester/relay", data)
        url = f"/v2/tester/relay/blobs/{digest}"
        whole = await client.get(url)
        assert (whole.status, await whole.read()) == (200, data)
        part = await client.get(url, headers={"Range": "bytes=1000-2999999"})
        assert (part.status, await part.read()) == (206, data[1000:3000000])
        assert read == []  # not one chunk came through the S3 client
        # A store whose answer cannot be relayed (say, chunked) is read in chunks instead.
        monkeypatch.setattr("registry.relay._read_head", _refusing_head)
        again = await client.get(url)
        assert (again.status, await again.read()) == (200, data)
        assert len(read) == 1


async def _refusing_head(*args: Any) -> None:
    raise NotRelayable("answered with Transfer-Encoding: chunked")


async def test_streamed_pull_of_a_blob_whose_object_is_gone_answers_blob_unknown(
    replica: Replica,
) -> None:
    async with replica(blob_redirect=False) as client:
        digest = await push_blob(client, "tester/lost", b"soon gone")
        await bucket_of(client).delete([blob_key(client, digest)])
        resp = await client.get(f"/v2/tester/lost/blobs/{digest}")
        assert resp.status == 404
        assert (await resp.json())["errors"][0]["code"] == "BLOB_UNKNOWN"


async def test_gc_deletes_unreferenced_objects_and_aborts_expired_multipart_uploads(
    s3_client: Client,
) -> None:
    kept = os.urandom(1000)
    await push_image(s3_client, "tester/kept", "v1", [kept])
    loose = await push_blob(s3_client, "tester/loose", os.urandom(2000))
    start = await s3_client.post("/v2/tester/idle/blobs/uploads/")
    resp = await s3_client.patch(start.headers["Location"], data=os.urandom(6 * MiB))
    assert resp.status == 202
    bucket = bucket_of(s3_client)
    prefix = client_prefix(s3_client)
    assert len([u async for u in bucket.list_multipart(prefix)]) == 1
    # A multipart upload no session row knows (a kill inside a request).
    stray = await bucket.create_multipart(prefix + "uploads/nobody/data")
    backend = s3_client.app[BLOB_BACKEND]
    collector = GarbageCollector(
        s3_client.app[DATABASE],
        backend.root,
        GcPolicy(grace_seconds=0, upload_expiry_seconds=0),
        reclaimer=backend.reclaimer,
    )
    await asyncio.sleep(0.01)  # created_at strictly before the cutoff
    report = await collector.collect()
    assert report.blobs == 1 and report.uploads == 2
    assert await bucket.head(blob_key(s3_client, loose)) is None
    assert await bucket.head(blob_key(s3_client, digest_of(kept))) is not None
    assert [u async for u in bucket.list_multipart(prefix)] == []
    assert stray
    gone = await s3_client.head(f"/v2/tester/loose/blobs/{loose}")
    assert gone.status == 404
    status = await s3_client.get(start.headers["Location"])
    assert status.status == 404


async def test_gc_and_fsck_remove_objects_completed_at_a_sessions_key(s3_client: Client) -> None:
    loose = await chunked_push(s3_client, "tester/loose", [os.urandom(5 * MiB), b"x"])
    [(collected, _)] = await blob_objects(s3_client)
    backend = s3_client.app[BLOB_BACKEND]
    db = s3_client.app[DATABASE]
    collector = GarbageCollector(
        db, backend.root, GcPolicy(grace_seconds=0), reclaimer=backend.reclaimer
    )
    await s3_client.delete(f"/v2/tester/loose/blobs/{loose}")
    await asyncio.sleep(0.01)
    assert (await collector.collect()).blobs == 1
    assert await bucket_of(s3_client).head(collected) is None
    # An object a session completed at its key but never got a row for (a kill in between).
    keys = backend.keys
    assert keys is not None
    leftover = keys.by_upload("00000000-0000-4000-8000-000000000000")
    await bucket_of(s3_client).put(leftover, b"left behind")

    def fsck(repair: bool, grace: float) -> Any:
        return backend.fsck(
            db, repair=repair, grace_seconds=grace, upload_expiry_seconds=86400, owners=None
        ).run()

    report = await fsck(False, 0)
    assert [(f.kind, f.subject) for f in report.findings] == [("orphan-file", leftover)]
    assert [f.repair for f in (await fsck(True, 3600)).findings] == ["skipped (in flight)"]
    assert [f.repair for f in (await fsck(True, 0)).findings] == ["deleted"]
    assert await blob_objects(s3_client) == []


async def test_fsck_reports_missing_objects_and_deletes_rowless_ones_after_the_grace(
    s3_client: Client,
) -> None:
    layer = os.urandom(500)
    await push_image(s3_client, "tester/fsck", "v1", [layer])
    bucket = bucket_of(s3_client)
    await bucket.delete([blob_key(s3_client, digest_of(layer))])
    orphan = os.urandom(700)
    orphan_key = blob_key(s3_client, digest_of(orphan))
    await bucket.put(orphan_key, orphan)
    backend = s3_client.app[BLOB_BACKEND]
    db = s3_client.app[DATABASE]

    def fsck(repair: bool, grace: float) -> Any:
        return backend.fsck(
            db,
            repair=repair,
            grace_seconds=grace,
            upload_expiry_seconds=86400,
            owners=None,
        ).run()

    report = await fsck(False, 3600)
    kinds = sorted((f.kind, f.subject) for f in report.findings)
    assert kinds == [("missing-file", digest_of(layer)), ("orphan-file", digest_of(orphan))]
    young = await fsck(True, 3600)
    assert [f.repair for f in young.findings if f.kind == "orphan-file"] == ["skipped (in flight)"]
    assert await bucket.head(orphan_key) is not None
    old = await fsck(True, 0)
    assert [f.repair for f in old.findings if f.kind == "orphan-file"] == ["deleted"]
    assert await bucket.head(orphan_key) is None
    # The referenced blob's row stays (push it again); fsck keeps saying so.
    assert [f.kind for f in (await fsck(False, 0)).findings] == ["missing-file"]


async def test_readyz_names_the_blob_store_and_fails_while_its_bucket_is_missing(
    replica: Replica, seaweedfs: SeaweedFS
) -> None:
    async with replica() as client:
        ready = await client.get("/readyz")
        assert ready.status == 200
        assert (await ready.json())["blob_store"].startswith(f"s3://{seaweedfs.bucket}/")
    async with replica(blob_store="s3://no-such-bucket/x") as client:
        ready = await client.get("/readyz")
        body = await ready.json()
        assert ready.status == 503
        assert body["reason"].startswith("blob store failed: bucket no-such-bucket:"), body


@pytest.mark.parametrize("size", [MiB, PART_MIN + MiB], ids=["tail", "part"])
async def test_two_replicas_taking_one_chunk_at_once_never_mix_their_bytes(
    replica: Replica, size: int
) -> None:
    # Two replicas take a chunk of the same session at the same moment, at the same offset: a
    # client's mistake, or an attempt to get forged bytes published under the digest of genuine
    # ones (blobs are shared by digest across repositories). Whichever is acknowledged, its
    # bytes, and only its bytes, are what the session publishes.
    genuine, forged = os.urandom(size), os.urandom(size)
    halfway = [asyncio.Event(), asyncio.Event()]
    answered = [asyncio.Event(), asyncio.Event()]

    async def body(data: bytes, me: int) -> Any:
        yield data[: size // 2]
        halfway[me].set()
        # Let the other request send its first half too, if it is let in at all.
        waits = [asyncio.ensure_future(e.wait()) for e in (halfway[1 - me], answered[1 - me])]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()
        yield data[size // 2 :]

    async with replica() as a, replica() as b:
        start = await a.post("/v2/tester/race/blobs/uploads/")
        location = start.headers["Location"]

        async def patch(client: Client, me: int, data: bytes) -> int:
            try:
                resp = await client.patch(
                    location, data=body(data, me), headers={"Content-Range": f"0-{size - 1}"}
                )
                return resp.status
            finally:
                answered[me].set()

        statuses = await asyncio.gather(patch(a, 0, genuine), patch(b, 1, forged))
        assert sorted(statuses) == [202, 416], statuses
        sent = (genuine, forged)[statuses.index(202)]
        done = await a.put(location, params={"digest": digest_of(sent)})
        assert done.status == 201, await done.text()
        get = await b.get(f"/v2/tester/race/blobs/{digest_of(sent)}", allow_redirects=False)
        assert await follow(get) == (200, sent)
