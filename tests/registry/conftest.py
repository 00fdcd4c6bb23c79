from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from beakerd.app import create_app
from beakerd.settings import Settings
from tests.backends.backend import Backend

ADMIN = "tester"


@pytest.fixture
async def client(
    tmp_path: Path, private_home: Path, backend: Backend
) -> AsyncIterator[TestClient[object, object]]:
    """The whole app in-process, on a data folder of its own, as the bootstrap admin.

    The admin's API token is read from the Beaker config that first start writes, and sent as
    HTTP Basic on every request, which /v2 accepts beside Docker's token flow.
    """
    app = create_app(
        Settings(data_dir=tmp_path / "data", bootstrap_account=ADMIN, **backend.settings())
    )
    server = TestServer(app)
    await server.start_server()
    config = yaml.safe_load((private_home / ".beaker" / "config.yml").read_text())
    login = aiohttp.encode_basic_auth(ADMIN, config["user_token"])
    async with TestClient(server, headers={"Authorization": login}) as test_client:
        yield test_client
