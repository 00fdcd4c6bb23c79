"""The narrow windows the crash and GC tests reach only by chance, set up deterministically
in-process: a crash between a publish and the end of its request, a collection racing a push
of the same blob, a manifest naming a blob collected since the client checked it, and two
workers taking chunks of one session at once."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.blobs import BlobStore
from storage.blobstore import OffsetMismatch
from storage.database import Database
from storage.digests import Digest
from storage.gc import BlobFiles, GarbageCollector, GcPolicy
from storage.repositories import MissingBlobs, NewManifest, Repositories
from storage.schema import MIGRATIONS
from storage.sqlite import SqliteDatabase
from storage.uploads import UploadSessions


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    for folder in ("blobs", "uploads"):
        (tmp_path / folder).mkdir()
    database = SqliteDatabase(tmp_path / "beakerd.db")
    await database.open()
    await database.migrate("storage", MIGRATIONS)
    yield database
    await database.close()


def sessions(db: Database, root: Path) -> UploadSessions:
    blobs = BlobStore(root / "blobs")
    return UploadSessions(db, root / "uploads", blobs, Repositories(db))


async def iterate(data: bytes) -> AsyncIterator[bytes]:
    """A body already in memory, as the chunk stream the upload functions take."""
    yield data


async def test_finishing_again_after_a_crash_that_followed_the_publish_succeeds(
    db: Database, tmp_path: Path
) -> None:
    uploads = sessions(db, tmp_path)
    data = b"published just before the crash"
    digest = Digest.of(data)
    upload = await uploads.create("windows/repo")
    await uploads.append(upload, iterate(data))
    await uploads._publish(
        upload, digest, True
    )  # the process dies here, before the session is cleared

    restarted = sessions(db, tmp_path)
    again = await restarted.get("windows/repo", upload.id)
    assert again is not None and again.digest == str(digest)
    assert await restarted.finish(again, digest) == len(data)
    assert await restarted.get("windows/repo", upload.id) is None
    assert BlobStore(tmp_path / "blobs").path(digest).read_bytes() == data


async def test_collecting_a_blob_while_a_push_recreates_it_keeps_the_file(
    db: Database, tmp_path: Path
) -> None:
    repositories = Repositories(db)
    store = BlobStore(tmp_path / "blobs")
    data = b"old, unreferenced, and pushed again"
    digest = Digest.of(data)
    path = store.path(digest)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    # GC deleted the row; before it removes the file, a push commits the row again.
    await repositories.add_blob("windows/repo", str(digest), len(data))
    assert await BlobFiles(db, tmp_path).remove(digest) is None
    assert path.read_bytes() == data
    assert list((tmp_path / "trash").iterdir()) == []


async def test_a_push_publishing_while_gc_removes_the_old_copy_restores_its_own(
    db: Database, tmp_path: Path
) -> None:
    uploads = sessions(db, tmp_path)
    store = BlobStore(tmp_path / "blobs")
    data = b"same digest, collected and pushed at once"
    digest = Digest.of(data)
    store.path(digest).parent.mkdir(parents=True)
    store.path(digest).write_bytes(data)  # the old copy, whose row GC already deleted
    upload = await uploads.create("windows/repo")
    await uploads.append(upload, iterate(data))

    original_add_blob = uploads.repositories.add_blob

    async def add_blob_while_gc_runs(
        repository: str, text: str, size: int, *, create: bool = True, session: str | None = None
    ) -> None:
        # GC removes the file after the push linked (found) it but before its row commits.
        assert await BlobFiles(db, tmp_path).remove(digest) == len(data)
        await original_add_blob(repository, text, size, create=create, session=session)

    uploads.repositories.add_blob = add_blob_while_gc_runs  # type: ignore[method-assign]
    await uploads.finish(upload, digest)
    assert store.path(digest).read_bytes() == data


async def test_a_manifest_naming_a_collected_blob_is_refused_not_stored_dangling(
    db: Database, tmp_path: Path
) -> None:
    repositories = Repositories(db)
    layer = b"checked by HEAD, then collected"
    digest = str(Digest.of(layer))
    await repositories.add_blob("windows/repo", digest, len(layer))
    await db.execute("UPDATE blobs SET created_at = ?", (time.time() - 10,))
    await db.execute("UPDATE repository_blobs SET created_at = ?", (time.time() - 10,))
    await db.execute("UPDATE gc_blob_review SET review_after = ?", (time.time() - 10,))
    report = await GarbageCollector(db, tmp_path, GcPolicy(grace_seconds=5)).collect()
    assert report.blobs == 0  # no file was ever written: the row goes, nothing is freed
    manifest = NewManifest(
        digest="sha256:" + "0" * 64,
        media_type="application/vnd.oci.image.manifest.v1+json",
        content=b"{}",
        artifact_type=None,
        subject=None,
        annotations=None,
        blob_digests=[digest],
        manifest_digests=[],
    )
    with pytest.raises(MissingBlobs):
        await repositories.put_manifest("windows/repo", manifest, "v1")
    assert await repositories.resolve_tag("windows/repo", "v1") is None


async def test_two_workers_writing_one_session_at_once_never_mix_their_bytes(
    db: Database, tmp_path: Path
) -> None:
    # Two worker processes (each its own sessions object) take chunks for the same session at
    # the same moment: a client's mistake, or an attempt to get forged bytes published under
    # the digest of genuine ones (blobs are shared by digest across repositories).
    genuine, forged = os.urandom(1 << 20), os.urandom(1 << 20)
    workers = [sessions(db, tmp_path), sessions(db, tmp_path)]
    created = await workers[0].create("windows/repo")
    halfway = [asyncio.Event(), asyncio.Event()]
    ended = [asyncio.Event(), asyncio.Event()]

    async def body(data: bytes, me: int) -> AsyncIterator[bytes]:
        yield data[: len(data) // 2]
        halfway[me].set()
        # Let the other request write its first half too, if it is let in at all.
        other = 1 - me
        waits = [asyncio.ensure_future(e.wait()) for e in (halfway[other], ended[other])]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()
        yield data[len(data) // 2 :]

    async def append(me: int, data: bytes) -> BaseException | None:
        upload = await workers[me].get("windows/repo", created.id)
        assert upload is not None
        try:
            await workers[me].append(upload, body(data, me), 0)
            return None
        except OffsetMismatch as e:
            return e
        finally:
            ended[me].set()

    outcomes = await asyncio.gather(append(0, genuine), append(1, forged))
    assert sum(outcome is None for outcome in outcomes) == 1, outcomes
    winner = outcomes.index(None)
    sent = (genuine, forged)[winner]
    upload = await workers[winner].get("windows/repo", created.id)
    assert upload is not None and upload.offset == len(sent)
    digest = Digest.of(sent)
    assert await workers[winner].finish(upload, digest) == len(sent)
    assert BlobStore(tmp_path / "blobs").path(digest).read_bytes() == sent
