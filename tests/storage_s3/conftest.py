from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from beakerd.app import create_app
from beakerd.settings import Settings
from tests.backends.backend import Backend

ADMIN = "tester"
Client = TestClient[Any, Any]
Replica = Callable[..., contextlib.AbstractAsyncContextManager[Client]]


@pytest.fixture
def replica(tmp_path: Path, private_home: Path, s3_store: str, backend: Backend) -> Replica:
    """Start an app over the test's database (on each backend) and bucket prefix; several
    may run at once, sharing nothing else (each has its own upload sessions and caches)."""
    database = backend.database_settings()

    @contextlib.asynccontextmanager
    async def start(**settings: Any) -> AsyncIterator[Client]:
        defaults: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "blob_store": s3_store,
            "bootstrap_account": ADMIN,
            "gc_interval_seconds": 0,
        }
        app = create_app(Settings(**{**defaults, **database, **settings}))
        server = TestServer(app)
        await server.start_server()
        config = yaml.safe_load((private_home / ".beaker" / "config.yml").read_text())
        login = aiohttp.encode_basic_auth(ADMIN, config["user_token"])
        async with TestClient(server, headers={"Authorization": login}) as client:
            yield client

    return start


@pytest.fixture
async def s3_client(replica: Replica) -> AsyncIterator[Client]:
    async with replica() as client:
        yield client
