"""A garbage collection killed at any step leaves nothing the next pass does not reclaim.

`beakerd gc` runs in a subprocess that SIGKILLs itself right after its N-th step (a file
rename, link or unlink, or a transaction's start or end: tests/durability/gc_killer.py), for
many N spread over a whole pass over hundreds of blobs (two batches). After each kill one
normal pass must leave the data folder exactly as a pass that was never killed would: every
referenced blob intact, every unreferenced one gone, no file without a row, no row without a
file, nothing in trash/, and fsck clean without --repair.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from beakerd.app import create_app
from beakerd.settings import Settings
from metadata.accounts import create_account
from metadata.owners import BeakerRepositoryOwners
from storage.digests import Digest
from storage.gc import GarbageCollector, GcPolicy
from storage.trash import BlobFiles
from tests.durability.datafolder import (
    Contents,
    add_rows,
    blob_files,
    blob_rows,
    fill,
    open_migrated,
    write_blob,
)
from tests.durability.helpers import ROOT, fsck_in_process
from tests.server import running_beakerd

LOOSE_BLOBS = int(os.environ.get("BEAKERD_GC_KILL_BLOBS", "700"))
KILL_POINTS = int(os.environ.get("BEAKERD_GC_KILL_POINTS", "8"))
SERVER_ROUNDS = int(os.environ.get("BEAKERD_GC_KILL_SERVER_ROUNDS", "4"))
GC_ARGS = ["gc", "--json"]


def gc_killed_after(data_dir: Path, step: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.durability.gc_killer", str(step), *GC_ARGS,
         "--data-dir", str(data_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


async def normal_pass(data_dir: Path) -> None:
    db = await open_migrated(data_dir)
    try:
        owners = BeakerRepositoryOwners(db)
        await GarbageCollector(db, data_dir, GcPolicy(), owners=owners).collect()
    finally:
        await db.close()


async def assert_settled(data_dir: Path, contents: Contents, label: str) -> None:
    assert await fsck_in_process(data_dir) == [], label
    assert await blob_rows(data_dir) == contents.kept, label
    assert blob_files(data_dir) == contents.kept, label
    assert list((data_dir / "trash").iterdir()) == [], label


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Contents]:
    root = tmp_path_factory.mktemp("gc-template") / "data"
    contents = asyncio.run(fill(root, LOOSE_BLOBS))
    return root, contents


async def test_gc_killed_at_any_step_is_finished_by_the_next_pass(
    template: tuple[Path, Contents], tmp_path: Path
) -> None:
    source, contents = template
    full = tmp_path / "full"
    shutil.copytree(source, full)
    run = gc_killed_after(full, 0)
    assert run.returncode == 0, run.stderr
    steps = int(run.stderr.strip().rsplit("steps: ", 1)[1])
    await assert_settled(full, contents, "a pass never killed")
    assert steps > 2 * LOOSE_BLOBS  # a rename and an unlink per blob at least

    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    # The first steps (trash recovery, orphan repositories, the first batch's transaction),
    # the last ones (upload sessions), and a spread over the blob batches in between.
    points = {1, 2, 3, 4, steps - 2, steps - 1}
    points |= {rng.randrange(5, steps - 2) for _ in range(KILL_POINTS)}
    for step in sorted(points):
        data = tmp_path / f"killed-{step}"
        shutil.copytree(source, data)
        killed = gc_killed_after(data, step)
        assert killed.returncode == -signal.SIGKILL, (step, killed.stderr)
        await normal_pass(data)
        await assert_settled(data, contents, f"seed {seed}: killed after step {step} of {steps}")
        shutil.rmtree(data)
    print(f"\ngc kills (seed {seed}): {len(points)} kill points over {steps} steps, all settled")


async def test_a_server_started_after_a_killed_pass_serves_what_it_had_moved_to_trash(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    for folder in ("blobs", "uploads"):
        (root / folder).mkdir(parents=True)
    db = await open_migrated(root)
    _, token = await create_account(db, "tester", admin=True)
    data = os.urandom(1000)
    digest = write_blob(root, data)
    await add_rows(db, "tester/app", {digest: len(data)})
    # A pass killed right after renaming the file into trash/, before deleting the row.
    await BlobFiles(db, root).bury([Digest.parse(digest)])
    await db.close()

    app = create_app(Settings(data_dir=root, gc_interval_seconds=3600))
    login = {"Authorization": aiohttp.encode_basic_auth("tester", token)}
    async with TestClient(TestServer(app), headers=login) as client:
        for _ in range(200):  # at start, not an hour later at the first pass
            resp = await client.get(f"/v2/tester/app/blobs/{digest}")
            if resp.status == 200:
                break
            await asyncio.sleep(0.05)
        assert await resp.read() == data


async def test_the_servers_background_gc_killed_at_random_moments_is_finished_by_the_next_pass(
    template: tuple[Path, Contents], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, contents = template
    monkeypatch.setenv("BEAKERD_GC_INTERVAL_SECONDS", "1")
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    for round_no in range(SERVER_ROUNDS):
        folder = tmp_path / f"round-{round_no}"
        shutil.copytree(source, folder / "data")
        with running_beakerd(folder) as server:
            # The first pass starts a second after start-up and takes a fraction of one here.
            await asyncio.sleep(rng.uniform(0.9, 1.6))
            server.kill()
        await normal_pass(folder / "data")
        await assert_settled(folder / "data", contents, f"seed {seed}, round {round_no}")
        shutil.rmtree(folder)
