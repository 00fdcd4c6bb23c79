"""/healthz says the process serves; /readyz says it can do its job, and why not when it cannot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from beakerd import health
from storage.database import Database
from storage.sqlite import SqliteDatabase
from tests.ops.helpers import call
from tests.server import Server

DB = web.AppKey("test_db", Database)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = SqliteDatabase(tmp_path / "test.db")
    await db.open()
    yield db
    await db.close()


async def _client(db: Database, data_dir: Path) -> TestClient[web.Request, web.Application]:
    app = web.Application()
    app[DB] = db
    health.add_routes(app, DB, data_dir)
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()
    return client


def test_health_endpoints_answer_without_credentials(beakerd_server: Server) -> None:
    alive = call(beakerd_server, "GET", "/healthz", auth=False)
    ready = call(beakerd_server, "GET", "/readyz", auth=False)
    assert alive.status == 200 and alive.json() == {"status": "ok"}
    assert ready.status == 200 and ready.json()["status"] == "ok"


def test_readyz_names_the_database_and_blob_store_without_credentials(
    beakerd_server: Server,
) -> None:
    body = call(beakerd_server, "GET", "/readyz", auth=False).json()
    assert body["database"].split(":", 1)[0] in ("sqlite", "postgresql")
    assert "@" not in body["database"]  # no password, no user
    assert body["blob_store"].split(":", 1)[0] in ("file", "s3")


async def test_readyz_is_ok_with_a_working_database_and_writable_folder(
    database: Database, tmp_path: Path
) -> None:
    client = await _client(database, tmp_path)
    try:
        resp = await client.get("/readyz")
        assert resp.status == 200
        leftovers = await asyncio.to_thread(lambda: list(tmp_path.glob(".readyz-*")))
        assert leftovers == []  # the probe file is cleaned up
    finally:
        await client.close()


async def test_readyz_reports_an_unwritable_data_folder(database: Database, tmp_path: Path) -> None:
    # A regular file where the folder should be: no one, root included, can create files in it.
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("")
    client = await _client(database, not_a_folder)
    try:
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 503
        assert body["status"] == "unavailable"
        assert "not writable" in body["reason"]
        healthz = await client.get("/healthz")
        assert healthz.status == 200  # alive, just not ready
    finally:
        await client.close()


async def test_readyz_reports_a_database_that_does_not_answer(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "closed.db")  # never opened: every query fails
    client = await _client(db, tmp_path)
    try:
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 503
        assert body["reason"].startswith("database")
    finally:
        await client.close()


async def test_readyz_is_unavailable_once_shutdown_begins(
    database: Database, tmp_path: Path
) -> None:
    client = await _client(database, tmp_path)
    try:
        client.app[health.DRAINING].append(True)
        resp = await client.get("/readyz")
        assert resp.status == 503
        assert (await resp.json())["reason"] == "shutting down"
    finally:
        await client.close()
