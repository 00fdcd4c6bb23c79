"""A collection racing pushes of the very blob it removes, set up deterministically: the file
is in trash/ (renamed before its row is deleted) when the push lands, or the row is gone and
only the file's deletion is left. No push may lose the blob it was told was stored."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from pathlib import Path

import pytest

from storage.blobs import BlobStore
from storage.database import Database
from storage.digests import Digest
from storage.gc import GarbageCollector, GcPolicy
from storage.repositories import NewManifest, Repositories
from storage.schema import MIGRATIONS
from storage.trash import BlobFiles, Tomb
from storage.uploads import UploadSessions
from tests.backends.backend import Backend

DATA = b"an old unreferenced blob, pushed again at the worst moment"
DIGEST = Digest.of(DATA)


@pytest.fixture
async def db(tmp_path: Path, backend: Backend) -> AsyncIterator[Database]:
    for folder in ("blobs", "uploads"):
        (tmp_path / folder).mkdir()
    database = await backend.open_database(tmp_path)
    await database.migrate("storage", MIGRATIONS)
    # The blob is stored, unreferenced and past the grace period.
    path = BlobStore(tmp_path / "blobs").path(DIGEST)
    path.parent.mkdir(parents=True)
    path.write_bytes(DATA)
    await Repositories(database).add_blob("races/repo", str(DIGEST), len(DATA))
    for table in ("blobs", "repository_blobs"):
        await database.execute(f"UPDATE {table} SET created_at = ?", (time.time() - 60,))
    await database.execute("UPDATE gc_blob_review SET review_after = ?", (time.time() - 60,))
    yield database
    await database.close()


async def body() -> AsyncIterator[bytes]:
    yield DATA


def push(db: Database, root: Path) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        blobs = BlobStore(root / "blobs")
        uploads = UploadSessions(db, root / "uploads", blobs, Repositories(db))
        await uploads.ingest("races/repo", DIGEST, body())

    return run


def reference(db: Database, root: Path) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        manifest = NewManifest(
            "sha256:" + "1" * 64, "application/vnd.oci.image.manifest.v1+json", b"{}",
            None, None, None, [str(DIGEST)], [],
        )  # fmt: skip
        await Repositories(db).put_manifest("races/repo", manifest, "v1")

    return run


async def collect(db: Database, root: Path) -> int:
    return (await GarbageCollector(db, root, GcPolicy(grace_seconds=5)).collect()).blobs


def assert_stored(root: Path) -> None:
    assert BlobStore(root / "blobs").path(DIGEST).read_bytes() == DATA
    assert list((root / "trash").iterdir()) == []


@pytest.mark.parametrize("client", [push, reference], ids=["pushed-again", "referenced"])
async def test_a_blob_pushed_or_referenced_while_its_file_is_in_trash_stays_whole(
    db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    client: Callable[[Database, Path], Callable[[], Awaitable[None]]],
) -> None:
    act = client(db, tmp_path)
    bury = BlobFiles.bury

    async def bury_then_push(self: BlobFiles, digests: Iterable[Digest]) -> list[Tomb]:
        tombs = await bury(self, digests)
        await act()
        return tombs

    monkeypatch.setattr(BlobFiles, "bury", bury_then_push)
    assert await collect(db, tmp_path) == 0
    assert await Repositories(db).blob_size(str(DIGEST)) == len(DATA)
    assert_stored(tmp_path)


async def test_a_blob_pushed_again_after_its_row_was_deleted_keeps_the_new_copy(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settle = BlobFiles.settle

    async def push_then_settle(
        self: BlobFiles, tombs: Iterable[Tomb], gone: Collection[str]
    ) -> int:
        await push(db, tmp_path)()
        return await settle(self, tombs, gone)

    monkeypatch.setattr(BlobFiles, "settle", push_then_settle)
    assert await collect(db, tmp_path) == 1  # the old copy, in trash/, was deleted
    assert await Repositories(db).blob_size(str(DIGEST)) == len(DATA)
    assert_stored(tmp_path)
