"""The whole app in-process, with HOME pointed at the test's own folder.

Bootstrap writes `~/.beaker/config.yml`; the tests read the admin's token from there, exactly as
the Beaker clients do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from beakerd.app import create_app
from beakerd.settings import Settings
from metadata.authority import BeakerAuthority
from metadata.context import METADATA
from registry.auth import AUTHORITY
from tests.backends.backend import Backend
from tests.metadata.helpers import Api

ADMIN = "tester"


@pytest.fixture
def home(private_home: Path) -> Path:
    return private_home


def make_app(tmp_path: Path, with_authority: bool = False, **settings: Any) -> web.Application:
    settings.setdefault("bootstrap_account", ADMIN)
    app = create_app(Settings(data_dir=tmp_path / "data", **settings))
    if with_authority:

        async def install_authority(app: web.Application) -> None:
            app[AUTHORITY] = BeakerAuthority(app[METADATA].db)

        # Runs after the storage context has opened the database.
        app.on_startup.append(install_authority)
    return app


def config_token(home: Path) -> str:
    config = yaml.safe_load((home / ".beaker" / "config.yml").read_text())
    return str(config["user_token"])


@pytest.fixture
async def api(tmp_path: Path, home: Path, backend: Backend) -> AsyncIterator[Api]:
    """The admin `tester`'s view of /api/v3 (the admin may also push anywhere on /v2)."""
    app = make_app(tmp_path, **backend.settings())
    async with TestClient(TestServer(app)) as client:
        yield Api(client, config_token(home))


@pytest.fixture
async def authed_api(tmp_path: Path, home: Path, backend: Backend) -> AsyncIterator[Api]:
    """Like `api`, with the registry asking Beaker accounts who may do what on /v2."""
    app = make_app(tmp_path, with_authority=True, **backend.settings())
    async with TestClient(TestServer(app)) as client:
        yield Api(client, config_token(home))
