from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from beakerd.app import create_app
from beakerd.settings import Settings


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """First start writes ~/.beaker/config.yml: keep it in the test's own folder."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[object, object]]:
    """The whole app in-process, on a data folder of the test's own."""
    app = create_app(Settings(data_dir=tmp_path / "data"))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client
