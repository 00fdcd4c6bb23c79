"""The backends a test suite runs on: the embedded default and the replicas' shared ones.

Suites that must hold on every backend take the `backend` fixture (or `session_backend`, for
session-wide servers); each test then runs once per backend. PostgreSQL is started once per
session; every app or server a test starts gets a database of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.backends.backend import Backend
from tests.backends.postgres import PostgresServer, postgres_bin

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if postgres_bin() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not installed: .ci/run installs it (apt-get postgresql)")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


def _backend(request: pytest.FixtureRequest) -> Backend:
    name = str(request.param)
    if name == "sqlite":
        return Backend(name)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return Backend(name, server)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return _backend(request)


@pytest.fixture(scope="session", params=BACKENDS)
def session_backend(request: pytest.FixtureRequest) -> Backend:
    return _backend(request)
