"""Many clients at once: distinct images sharing layers, and one blob pushed by many."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.durability.helpers import (
    RegistryClient,
    digest_of,
    fsck_in_process,
    make_image,
    random_bytes,
)
from tests.server import Server, running_beakerd

WORKER_COUNTS = [1, 2]


@pytest.fixture(params=WORKER_COUNTS, ids=lambda n: f"workers={n}")
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    workers: int = request.param
    args = ["--workers", str(workers)] if workers > 1 else []
    with running_beakerd(tmp_path, args) as running:
        yield running


def blob_files(data_dir: Path) -> dict[str, os.stat_result]:
    root = data_dir / "blobs" / "sha256"
    return {f"sha256:{p.name}": p.stat() for p in root.glob("*/*")}


async def test_fifty_concurrent_pushes_sharing_layers_all_succeed_with_one_copy_each(
    server: Server, http: aiohttp.ClientSession
) -> None:
    client = RegistryClient(server, http)
    shared = [random_bytes(256 << 10) for _ in range(3)]
    images = [
        make_image(f"tester/concurrent/app{i}", "v1", [*shared, random_bytes(64 << 10)])
        for i in range(50)
    ]
    await asyncio.gather(*(client.push_image(image) for image in images))

    problems = await asyncio.gather(*(client.pull_image(i.repository, "v1") for i in images))
    assert [p for p in problems if p] == []
    expected = {digest_of(blob) for image in images for blob in image.blobs}
    files = blob_files(server.data_dir)
    assert set(files) == expected  # one file per distinct digest, nothing else
    assert all(stat.st_nlink == 1 for stat in files.values())  # no staged copy still linked
    assert list((server.data_dir / "uploads").iterdir()) == []
    assert await fsck_in_process(server.data_dir) == []


async def test_one_blob_pushed_by_many_clients_at_once_is_stored_once(
    server: Server, http: aiohttp.ClientSession
) -> None:
    client = RegistryClient(server, http)
    data = random_bytes(2 << 20)
    digest = digest_of(data)
    repositories = [
        f"tester/same-blob/r{i % 8}" for i in range(24)
    ]  # several clients per repository
    pushes = [
        client.push_blob(name, data) if i % 2 else client.push_blob_chunked(name, data, 256 << 10)
        for i, name in enumerate(repositories)
    ]
    assert await asyncio.gather(*pushes) == [digest] * len(repositories)

    for name in set(repositories):
        assert await client.get_blob(name, digest) == data
    files = blob_files(server.data_dir)
    assert list(files) == [digest]
    assert files[digest].st_nlink == 1
    assert list((server.data_dir / "uploads").iterdir()) == []
    assert await fsck_in_process(server.data_dir) == []
