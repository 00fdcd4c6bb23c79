from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends.backend import Backend
from tests.server import Server, running_beakerd

pytest_plugins = ["tests.backends.fixtures", "tests.backends.s3_fixtures"]


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """First start writes ~/.beaker/config.yml: every test keeps it in a folder of its own."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("BEAKER_CONFIG", raising=False)
    return home


@pytest.fixture(scope="session")
def beakerd_server(
    tmp_path_factory: pytest.TempPathFactory, session_backend: Backend
) -> Iterator[Server]:
    """One real beakerd per backend for the whole session; tests use distinct repository names.

    On S3 it streams blobs (`blob_redirect` off), so that the real clients pull both ways: the
    cluster (tests/cluster) answers them with the default 307 to a presigned URL."""
    env = {"BEAKERD_BLOB_REDIRECT": "false"} if session_backend.s3 is not None else {}
    tmp = tmp_path_factory.mktemp("beakerd")
    with running_beakerd(tmp, session_backend.args(), env) as server:
        yield server


@pytest.fixture
def fresh_beakerd(tmp_path: Path) -> Iterator[Server]:
    """A real beakerd of the test's own, for tests that restart or inspect its data folder."""
    with running_beakerd(tmp_path) as server:
        yield server
