"""Which repositories have an owner (metadata/owners.py), and the orphans GC takes out."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from metadata.accounts import create_account
from metadata.owners import BeakerRepositoryOwners
from storage.database import Database
from storage.fsck import Fsck
from storage.gc import GarbageCollector, GcPolicy
from storage.repositories import Repositories
from tests.backends.backend import Backend
from tests.backends.migrated_schemas import migrated
from tests.durability.datafolder import put_image


@pytest.fixture
async def db(tmp_path: Path, backend: Backend) -> AsyncIterator[Database]:
    (tmp_path / "blobs").mkdir()
    database = await migrated(await backend.open_database(tmp_path))
    account, _ = await create_account(database, "ann")
    workspace = await database.fetchone("SELECT id FROM workspaces")
    assert workspace is not None
    await database.execute(
        "INSERT INTO images (id, author_id, workspace_id, repository, created)"
        " VALUES ('bp_1', ?, ?, 'qimagerepo', 0)",
        (account.id, workspace["id"]),
    )
    yield database
    await database.close()


async def test_an_account_owns_its_name_and_below_and_an_image_its_repository(
    db: Database,
) -> None:
    names = ["ann", "ann/app", "ann/a/b", "anne/app", "annx", "qimagerepo", "qimagerepo2", "x/ann"]
    owned = await BeakerRepositoryOwners(db).owned(names)
    assert owned == {"ann", "ann/app", "ann/a/b", "qimagerepo"}


async def test_gc_removes_orphans_past_the_grace_period_with_their_blobs_and_keeps_the_rest(
    db: Database, tmp_path: Path
) -> None:
    orphan_blobs = await put_image(db, tmp_path, "gone/app", 2)
    await put_image(db, tmp_path, "ann/app", 2)
    await put_image(db, tmp_path, "young/app", 2)
    past = time.time() - 60
    for table in ("blobs", "repository_blobs", "manifests"):
        await db.execute(f"UPDATE {table} SET created_at = ?", (past,))
    await db.execute(
        "UPDATE repositories SET created_at = ? WHERE name IN ('gone/app', 'ann/app')", (past,)
    )
    await db.execute("UPDATE gc_repository_review SET review_after = ?", (past,))
    owners = BeakerRepositoryOwners(db)
    report = await GarbageCollector(
        db, tmp_path, GcPolicy(grace_seconds=30), owners=owners
    ).collect()
    assert report.repositories == 1
    assert report.blobs == len(orphan_blobs)
    repositories = Repositories(db)
    assert not await repositories.exists("gone/app")
    assert await repositories.exists("ann/app") and await repositories.exists("young/app")


async def test_fsck_reports_orphans_and_a_repair_removes_those_past_the_grace_period(
    db: Database, tmp_path: Path
) -> None:
    await put_image(db, tmp_path, "gone/app", 1)
    await put_image(db, tmp_path, "ann/app", 1)
    owners = BeakerRepositoryOwners(db)
    report = await Fsck(db, tmp_path, owners=owners).run()
    assert [(f.kind, f.subject) for f in report.findings] == [("orphan-repository", "gone/app")]
    report = await Fsck(db, tmp_path, repair=True, grace_seconds=3600, owners=owners).run()
    assert report.findings[0].repair == "skipped (recent)"
    report = await Fsck(db, tmp_path, repair=True, grace_seconds=0, owners=owners).run()
    assert report.findings[0].repair == "repository removed"
    assert not await Repositories(db).exists("gone/app")
    assert (await Fsck(db, tmp_path, owners=owners).run()).findings == []
