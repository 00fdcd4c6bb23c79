"""A full disk: pushes fail with 507 and a JSON error, reads go on, nothing is corrupted, and
pushes work again once space is freed. The data folder is a 64 MiB tmpfs (root only)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Awaitable, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.durability.helpers import (
    PushRefused,
    RegistryClient,
    digest_of,
    fsck_in_process,
    make_image,
    random_bytes,
)
from tests.e2e.tools import require_root
from tests.server import Server, running_beakerd

FILLER_CHUNK = 1 << 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs mounted where the server keeps its data; unmounted afterwards."""
    require_root("mounting a tmpfs")
    mount_point = tmp_path / "data"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount_point)], check=True
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def server_on_small_disk(small_disk: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("BEAKERD_GC_INTERVAL_SECONDS", "0")
    with running_beakerd(small_disk.parent) as server:
        assert server.data_dir == small_disk
        yield server


def fill(folder: Path, leave: int) -> Path:
    """Write a filler file until only about `leave` bytes are free on `folder`'s filesystem."""
    filler = folder / "filler"
    with open(filler, "wb") as f:
        while True:
            stats = os.statvfs(folder)
            free = stats.f_bavail * stats.f_frsize
            if free <= leave:
                break
            f.write(b"\0" * min(FILLER_CHUNK, free - leave))
            f.flush()
    return filler


async def error_of(push: Awaitable[str]) -> PushRefused:
    try:
        await push
    except PushRefused as e:
        return e
    raise AssertionError("the push was accepted on a full disk")


async def test_full_disk_refuses_pushes_with_507_keeps_serving_and_recovers(
    server_on_small_disk: Server, http: aiohttp.ClientSession
) -> None:
    server = server_on_small_disk
    client = RegistryClient(server, http)
    before = make_image("full/before", "v1", [random_bytes(500_000)])
    await client.push_image(before)
    filler = fill(server.data_dir, leave=2 << 20)

    big = random_bytes(8 << 20)
    refused = await error_of(client.push_blob("full/after", big))
    assert refused.status == 507
    assert '"BLOB_UPLOAD_INVALID"' in refused.body and "disk is full" in refused.body
    location = await client.start_upload("full/chunked")
    chunk = 1 << 20
    acknowledged = 0
    with pytest.raises(PushRefused) as chunk_refused:
        for start in range(0, len(big), chunk):
            location = await client.patch(location, big[start : start + chunk], start)
            acknowledged = start + chunk
    assert chunk_refused.value.status == 507

    # Reads go on, and nothing already stored was damaged.
    assert await client.pull_image("full/before", "v1") == []
    assert await fsck_in_process(server.data_dir) == []

    filler.unlink()
    assert await client.push_blob("full/after", big)
    # The chunked session kept what it acknowledged and continues from there.
    assert await client.upload_offset(location) == acknowledged
    assert await client.resume_chunked(location, big, chunk)
    assert await client.get_blob("full/chunked", digest_of(big)) == big
    after = make_image("full/after", "v1", [random_bytes(500_000)])
    await client.push_image(after)
    assert await client.pull_image("full/after", "v1") == []
    assert await fsck_in_process(server.data_dir) == []
