"""A full disk: pushes fail with 507 and a JSON error, reads go on, nothing is corrupted, and
pushes work again once space is freed. The data folder is a 64 MiB tmpfs (root only).

Whichever ran out, the file system under a blob or SQLite under a commit, the answer is the
same 507 in the client's format (/v2 and /api/v3), logged in one line without a traceback, and
no file is left without a row that a GC pass does not reclaim."""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from metadata import routes
from metadata.context import METADATA
from storage.database import Database
from storage.repositories import Repositories
from tests.durability.helpers import (
    PushRefused,
    RegistryClient,
    digest_of,
    fsck_in_process,
    gc_json,
    make_image,
    random_bytes,
)
from tests.e2e.tools import require_root
from tests.metadata.conftest import config_token, make_app
from tests.server import Server, running_beakerd

Client = TestClient[Any, Any]
FILLER_CHUNK = 1 << 20
PAGE = 4096  # tmpfs allocates in pages


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


def set_free(filler: Path, leave: int) -> None:
    """Grow or shrink `filler` (allocated, not sparse) until about `leave` bytes are free."""
    stats = os.statvfs(filler.parent)
    free = stats.f_bavail * stats.f_frsize
    size = filler.stat().st_size
    target = max(0, (size + free - leave) // PAGE * PAGE)
    if target < size:
        os.truncate(filler, target)
    elif target > size:
        with open(filler, "r+b") as f:
            os.posix_fallocate(f.fileno(), size, target - size)


def disk_full_lines(server: Server) -> list[str]:
    return [line for line in server.log().splitlines() if "disk full on" in line]


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
    before = make_image("tester/full/before", "v1", [random_bytes(500_000)])
    await client.push_image(before)
    filler = fill(server.data_dir, leave=2 << 20)

    big = random_bytes(8 << 20)
    refused = await error_of(client.push_blob("tester/full/after", big))
    assert refused.status == 507
    assert '"BLOB_UPLOAD_INVALID"' in refused.body and "disk is full" in refused.body
    location = await client.start_upload("tester/full/chunked")
    chunk = 1 << 20
    acknowledged = 0
    with pytest.raises(PushRefused) as chunk_refused:
        for start in range(0, len(big), chunk):
            location = await client.patch(location, big[start : start + chunk], start)
            acknowledged = start + chunk
    assert chunk_refused.value.status == 507

    # Reads go on, and nothing already stored was damaged.
    assert await client.pull_image("tester/full/before", "v1") == []
    assert await fsck_in_process(server.data_dir) == []

    filler.unlink()
    assert await client.push_blob("tester/full/after", big)
    # The chunked session kept what it acknowledged and continues from there.
    assert await client.upload_offset(location) == acknowledged
    assert await client.resume_chunked(location, big, chunk)
    assert await client.get_blob("tester/full/chunked", digest_of(big)) == big
    after = make_image("tester/full/after", "v1", [random_bytes(500_000)])
    await client.push_image(after)
    assert await client.pull_image("tester/full/after", "v1") == []
    assert await fsck_in_process(server.data_dir) == []


async def test_a_database_too_full_to_commit_answers_507_and_leaves_no_file_without_a_row(
    server_on_small_disk: Server, http: aiohttp.ClientSession
) -> None:
    """Free space a little more than a blob each time, until a push fits: on the way, the blob
    file fits but SQLite's commits (the WAL cannot grow) do not."""
    server = server_on_small_disk
    client = RegistryClient(server, http)
    await client.push_image(make_image("tester/full/db", "v1", [random_bytes(100_000)]))
    filler = server.data_dir / "filler"
    filler.touch()
    blob_size, refused = 64 << 10, 0
    for extra in range(0, 64 * PAGE, PAGE):
        set_free(filler, blob_size + extra)
        try:
            await client.push_blob("tester/full/db", random_bytes(blob_size))
            break
        except PushRefused as e:
            assert e.status == 507, e
            assert '"BLOB_UPLOAD_INVALID"' in e.body and "disk is full" in e.body
            refused += 1
    else:
        raise AssertionError("no push fitted, even with 256 KiB more than the blob free")
    assert refused > 0

    # /api/v3 on a full database: its own JSON error, the same status.
    set_free(filler, 0)
    api = {"Authorization": f"Bearer {server.password}"}
    for n in range(20):
        async with http.post(
            f"{server.url}/api/v3/images", params={"name": f"full{n}"}, json={}, headers=api
        ) as resp:
            if resp.status == 507:
                body = await resp.json()
                assert body["code"] == 507 and "disk is full" in body["message"]
                refused += 1
                break
            assert resp.status == 200, await resp.text()
    else:
        raise AssertionError("creating images never ran out of space")

    # One line each, no traceback; and SQLite, not only the file system, ran out.
    lines = disk_full_lines(server)
    assert len(lines) == refused, lines
    assert any("SQLite: database or disk is full" in line for line in lines), lines
    assert "Traceback" not in server.log()

    # Nothing but blob files linked before a failed commit lacks its row, and GC reclaims those.
    filler.unlink()
    before_gc = await fsck_in_process(server.data_dir)
    assert all(finding.startswith("orphan-file: ") for finding in before_gc), before_gc
    assert before_gc, "no step had the blob file fit and its row's commit fail"
    gc_json(server.data_dir, "--grace-seconds", "0", "--upload-expiry-seconds", "0")
    assert await fsck_in_process(server.data_dir) == []
    assert await client.pull_image("tester/full/db", "v1") == []
    after = make_image("tester/full/db", "v2", [random_bytes(200_000)])
    await client.push_image(after)
    assert await client.pull_image("tester/full/db", "v2") == []


# -- in-process: each layer's way of running out, without a real full disk -----------------------


def full_database() -> sqlite3.OperationalError:
    return sqlite3.OperationalError("database or disk is full")


@pytest.fixture
async def app_client(tmp_path: Path, private_home: Path) -> AsyncIterator[tuple[Client, str]]:
    async with TestClient(TestServer(make_app(tmp_path))) as client:
        yield client, config_token(private_home)


def full_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("disk full on")]


async def test_a_blob_row_that_cannot_commit_is_a_507_and_its_file_is_left_for_gc(
    app_client: tuple[Client, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, token = app_client

    async def add_blob(*args: object, **kwargs: object) -> None:
        raise full_database()

    monkeypatch.setattr(Repositories, "add_blob", add_blob)
    blob = random_bytes(10_000)
    resp = await client.post(
        "/v2/tester/full/rows/blobs/uploads/",
        params={"digest": digest_of(blob)},
        data=blob,
        headers={"Authorization": aiohttp.encode_basic_auth("tester", token)},
    )
    assert resp.status == 507
    assert (await resp.json())["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    [line] = full_lines(caplog)
    assert line.exc_info is None and "SQLite: database or disk is full" in line.getMessage()
    # The linked file stays (another upload may count on it) with the session row naming it:
    # what the GC pass after the session's expiry removes.
    db = client.app[METADATA].db
    rows = await db.fetchall("SELECT digest FROM uploads")
    assert [row["digest"] for row in rows] == [digest_of(blob)]
    hex_digest = digest_of(blob).split(":")[1]
    assert (tmp_path / "data" / "blobs" / "sha256" / hex_digest[:2] / hex_digest).exists()


async def test_an_upload_session_that_cannot_commit_leaves_no_file(
    app_client: tuple[Client, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, token = app_client
    execute = Database.execute

    async def refuse_sessions(self: Database, sql: str, params: Any = ()) -> int:
        if sql.startswith("INSERT INTO uploads"):
            raise full_database()
        return await execute(self, sql, params)

    monkeypatch.setattr(Database, "execute", refuse_sessions)
    resp = await client.post(
        "/v2/tester/full/sessions/blobs/uploads/",
        headers={"Authorization": aiohttp.encode_basic_auth("tester", token)},
    )
    assert resp.status == 507
    assert len(full_lines(caplog)) == 1
    assert list((tmp_path / "data" / "uploads").iterdir()) == []


@pytest.mark.parametrize(
    "error",
    [
        full_database(),
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
    ],
)
async def test_the_api_answers_a_full_disk_with_its_own_json_507(
    app_client: tuple[Client, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
) -> None:
    client, token = app_client

    async def create_image(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(routes, "create_image", create_image)
    resp = await client.post(
        "/api/v3/images",
        params={"name": "full"},
        json={},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status == 507
    body = await resp.json()
    assert body["code"] == 507 and "disk is full" in body["message"]
    [line] = full_lines(caplog)
    assert line.exc_info is None


async def test_an_api_bug_is_a_json_500_with_its_traceback_logged(
    app_client: tuple[Client, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, token = app_client

    async def create_image(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(routes, "create_image", create_image)
    resp = await client.post(
        "/api/v3/images", json={}, headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 500
    assert await resp.json() == {"code": 500, "message": "internal server error"}
    assert any(r.exc_info for r in caplog.records if r.name == "beakerd.metadata")
