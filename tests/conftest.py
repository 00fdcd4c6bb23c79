from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server import Server, running_beakerd


@pytest.fixture(scope="session")
def beakerd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real beakerd for the whole session; tests use distinct repository names."""
    with running_beakerd(tmp_path_factory.mktemp("beakerd")) as server:
        yield server


@pytest.fixture
def fresh_beakerd(tmp_path: Path) -> Iterator[Server]:
    """A real beakerd of the test's own, for tests that restart or inspect its data folder."""
    with running_beakerd(tmp_path) as server:
        yield server
