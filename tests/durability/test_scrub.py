"""The background scrub: corrupt blob files are found and taken out without an operator, a
push of the right bytes heals them, and a pass is paced and resumes where it stopped."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from beakerd import metrics
from beakerd.app import create_app
from beakerd.settings import Settings
from storage.blobs import BlobStore
from storage.database import Database
from storage.digests import Digest
from storage.scrub import STATE_FILE, Scrubber, ScrubState
from tests.durability.datafolder import add_rows, open_migrated, write_blob
from tests.registry.helpers import digest_of, error_code, push_blob, push_image

MiB = 1 << 20


def blob_path(root: Path, digest: str) -> Path:
    return BlobStore(root / "blobs").path(Digest.parse(digest))


def corrupt(path: Path) -> None:
    """Flip one byte in the middle: same size, other bytes (bit rot)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def clean_metrics() -> Iterator[None]:
    metrics.reset()
    yield
    metrics.reset()


@pytest.fixture
async def scrubbing_client(
    tmp_path: Path, private_home: Path, clean_metrics: None
) -> AsyncIterator[TestClient[Any, Any]]:
    """The whole app with a scrub pass every 50 ms, as the bootstrap admin."""
    settings = Settings(
        data_dir=tmp_path / "data",
        bootstrap_account="tester",
        gc_interval_seconds=0,
        scrub_interval_seconds=0.05,
    )
    server = TestServer(create_app(settings))
    await server.start_server()
    token = yaml.safe_load((private_home / ".beaker" / "config.yml").read_text())["user_token"]
    login = aiohttp.encode_basic_auth("tester", token)
    async with TestClient(server, headers={"Authorization": login}) as client:
        yield client


async def test_the_scrub_takes_a_corrupt_blob_out_and_a_push_of_the_right_bytes_heals_it(
    scrubbing_client: TestClient[Any, Any], tmp_path: Path
) -> None:
    client = scrubbing_client
    layers = [os.urandom(200_000), os.urandom(300_000)]
    _, manifest = await push_image(client, "tester/scrub", "v1", layers)
    bad = digest_of(layers[1])
    corrupt(blob_path(tmp_path / "data", bad))

    for _ in range(400):  # a stall of seconds means the scrub never ran
        if metrics.scrub_corrupt.values.get((), 0) >= 1:
            break
        await asyncio.sleep(0.05)
    for method in (client.head, client.get):
        resp = await method(f"/v2/tester/scrub/blobs/{bad}")
        assert resp.status == 404
    assert await error_code(await client.get(f"/v2/tester/scrub/blobs/{bad}")) == "BLOB_UNKNOWN"
    assert len(list((tmp_path / "data" / "lost+found").iterdir())) == 1
    good = await client.get(f"/v2/tester/scrub/blobs/{digest_of(layers[0])}")
    assert await good.read() == layers[0]

    await push_blob(client, "tester/scrub", layers[1])
    healed = await client.get(f"/v2/tester/scrub/blobs/{bad}")
    assert await healed.read() == layers[1]
    pulled = await client.get(
        "/v2/tester/scrub/manifests/v1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert await pulled.read() == manifest
    text = metrics.render(None)
    assert "beakerd_scrub_corrupt_blobs_total 1" in text.splitlines()
    passes = re.search(r"^beakerd_scrub_passes_total (\d+)$", text, re.MULTILINE)
    assert passes is not None and int(passes[1]) >= 1


@pytest.fixture
async def stored(tmp_path: Path) -> AsyncIterator[tuple[Database, list[str]]]:
    """A data folder with 40 blobs of 50 KB each."""
    (tmp_path / "blobs").mkdir()
    db = await open_migrated(tmp_path)
    blobs = {write_blob(tmp_path, os.urandom(50_000)): 50_000 for _ in range(40)}
    await add_rows(db, "tester/many", blobs)
    yield db, sorted(blobs)
    await db.close()


async def test_a_scrub_pass_cut_short_resumes_where_it_stopped(
    stored: tuple[Database, list[str]], tmp_path: Path
) -> None:
    db, digests = stored
    slow = Scrubber(db, tmp_path, rate=500_000)  # 10 blobs a second
    task = asyncio.create_task(slow.scrub())
    await asyncio.sleep(1.5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    slow.close()
    after = ScrubState.load(tmp_path / STATE_FILE).after
    assert after in digests[:-1]  # saved on the way out, part-way through
    done = digests.index(after) + 1

    fast = Scrubber(db, tmp_path, rate=1 << 40)
    report = await fast.scrub()
    fast.close()
    assert report.blobs == len(digests) - done
    state = ScrubState.load(tmp_path / STATE_FILE)
    assert state.after == "" and state.finished_at is not None
    assert await fast.due_in(3600) > 3000  # the next pass is an interval away


async def test_a_scrub_pass_reads_no_faster_than_its_rate(
    stored: tuple[Database, list[str]], tmp_path: Path
) -> None:
    db, digests = stored
    scrubber = Scrubber(db, tmp_path, rate=MiB)
    started = time.monotonic()
    report = await scrubber.scrub()
    scrubber.close()
    assert report.blobs == len(digests) and report.bytes == 40 * 50_000
    # 2 MB at 1 MiB/s: a lower bound, which a loaded machine only makes easier to meet.
    assert time.monotonic() - started >= 1.8


async def test_the_scrub_leaves_a_fresh_copy_pushed_after_it_read_the_corrupt_one(
    tmp_path: Path,
) -> None:
    (tmp_path / "blobs").mkdir()
    data = os.urandom(1000)
    path = blob_path(tmp_path, write_blob(tmp_path, data))
    stat = path.stat()
    read = (stat.st_dev, stat.st_ino)
    fresh = path.with_name("fresh")
    fresh.write_bytes(data)
    os.replace(fresh, path)  # a push settled a new copy since the scrub read the old one
    assert await BlobStore(tmp_path / "blobs").quarantine(Digest.of(data), read) is None
    assert path.read_bytes() == data
    assert list((tmp_path / "lost+found").iterdir()) == []
