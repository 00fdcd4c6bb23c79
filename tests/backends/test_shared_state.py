"""What processes (replicas, on PostgreSQL) share through the database, on both engines: the
change counter, the server's secrets, the one-at-a-time lock of GC and scrub, GC's queries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.database import Database, open_database
from storage.gc import GarbageCollector, GcBusy, GcPolicy
from storage.generation import open_generation
from storage.generation_row import RowGeneration
from storage.schema import MIGRATIONS
from storage.secrets import shared_secret
from storage.work_lock import one_at_a_time
from tests.backends.backend import Backend


async def _open(data_dir: Path, url: str | None) -> Database:
    db = open_database(url, data_dir)
    await db.open()
    await db.migrate("storage", MIGRATIONS)
    return db


@pytest.fixture
async def two(backend: Backend, tmp_path: Path) -> AsyncIterator[tuple[Database, Database]]:
    """Two processes' handles on one store (two connections to one database)."""
    url = backend.settings().get("database")
    first = await _open(tmp_path, url)
    second = await _open(tmp_path, url)
    yield first, second
    await first.close()
    await second.close()


async def test_a_bump_in_one_process_moves_the_counter_another_reads(
    two: tuple[Database, Database], tmp_path: Path
) -> None:
    one, other = two
    mine = await open_generation(one, tmp_path)
    theirs = await open_generation(other, tmp_path)
    if isinstance(theirs, RowGeneration):
        await theirs.close()
        theirs = await RowGeneration.open(other, poll_seconds=0.01)
    try:
        before = theirs.value
        await mine.bump()
        for _ in range(500):
            if theirs.value != before:
                break
            await asyncio.sleep(0.01)
        assert theirs.value != before
    finally:
        await mine.close()
        await theirs.close()


async def test_the_first_secret_stored_is_the_one_every_process_gets(
    two: tuple[Database, Database],
) -> None:
    one, other = two
    got = await asyncio.gather(
        shared_secret(one, "key", lambda: b"from one"),
        shared_secret(other, "key", lambda: b"from other"),
    )
    assert got[0] == got[1] and got[0] in (b"from one", b"from other")
    assert await shared_secret(one, "key", lambda: b"later") == got[0]


async def test_only_one_process_at_a_time_holds_the_gc_lock(
    two: tuple[Database, Database], tmp_path: Path
) -> None:
    one, other = two
    async with one_at_a_time(one, tmp_path, "gc", GcBusy("busy")):
        with pytest.raises(GcBusy):
            async with one_at_a_time(other, tmp_path, "gc", GcBusy("busy")):
                pass
        # Another kind of work is not held up by it.
        async with one_at_a_time(other, tmp_path, "scrub", GcBusy("busy")):
            pass
    async with one_at_a_time(other, tmp_path, "gc", GcBusy("busy")):
        pass  # released


async def test_a_pass_collecting_untagged_manifests_runs_on_either_engine(
    two: tuple[Database, Database], tmp_path: Path
) -> None:
    one, _ = two
    policy = GcPolicy(grace_seconds=0, untagged_manifests=True)
    report = await GarbageCollector(one, tmp_path, policy).collect()
    assert report.manifests == 0
