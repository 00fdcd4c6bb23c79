"""pytest fixtures over tests/backends/seaweedfs.py (a plugin of tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.backends.seaweedfs import SeaweedFS


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS for the session; each test takes a prefix of its own in its bucket."""
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_store(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> str:
    """An `s3://` blob store URL of the test's own, with the credentials in the environment."""
    for name, value in seaweedfs.environment().items():
        monkeypatch.setenv(name, value)
    return f"s3://{seaweedfs.bucket}/{uuid.uuid4().hex[:12]}"
