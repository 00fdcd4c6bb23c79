"""The app in-process with policies, quotas or webhooks of the test's choosing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from beakerd.app import DATABASE, create_app
from beakerd.settings import Settings
from registry.context import REGISTRY
from storage.database import Database
from storage.repositories import Repositories
from tests.backends.backend import Backend

ADMIN = "tester"
Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
def database_settings(backend: Backend) -> dict[str, Any]:
    """A fresh empty database on the backend (made outside the test's event loop)."""
    return backend.settings()


@pytest.fixture
async def make_client(
    tmp_path: Path, private_home: Path, database_settings: dict[str, Any]
) -> AsyncIterator[MakeClient]:
    """`await make_client(**settings)`: the whole app as the bootstrap admin (HTTP Basic)."""
    async with AsyncExitStack() as stack:
        database = database_settings

        async def make(**settings: Any) -> Client:
            app = create_app(
                Settings(
                    data_dir=tmp_path / "data",
                    bootstrap_account=ADMIN,
                    gc_interval_seconds=0,
                    retention_interval_seconds=0,
                    scrub_interval_seconds=0,
                    grpc_enabled=False,
                    **database,
                    **settings,
                )
            )
            server = TestServer(app)
            await server.start_server()
            config = yaml.safe_load((private_home / ".beaker" / "config.yml").read_text())
            login = aiohttp.encode_basic_auth(ADMIN, config["user_token"])
            client = TestClient(server, headers={"Authorization": login})
            await stack.enter_async_context(client)
            _TOKENS[id(client)] = config["user_token"]
            return client

        yield make


_TOKENS: dict[int, str] = {}


def api_headers(client: Client) -> dict[str, str]:
    """What /api/v3 takes: the admin's token as a Bearer."""
    return {"Authorization": f"Bearer {token(client)}"}


def token(client: Client) -> str:
    return _TOKENS[id(client)]


def database(client: Client) -> Database:
    app: web.Application = client.server.app  # type: ignore[assignment]
    return app[DATABASE]


def repositories(client: Client) -> Repositories:
    app: web.Application = client.server.app  # type: ignore[assignment]
    return app[REGISTRY].repositories
