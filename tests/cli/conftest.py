from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.fake_api import FakeApi, serve


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    yield from serve()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME with no Beaker variables, so no test reads the real user's config."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    for var in ("BEAKER_CONFIG", "BEAKER_ADDR", "BEAKER_TOKEN", "BEAKER_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    return home
