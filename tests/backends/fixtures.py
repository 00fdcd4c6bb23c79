"""The backends a test suite runs on: the embedded default and the replicas' shared ones.

Suites that must hold on every backend take the `backend` fixture (or `session_backend`, for
session-wide servers); each test then runs once per backend: SQLite and the data folder, then
PostgreSQL and S3 (SeaweedFS), as replicas run. PostgreSQL and SeaweedFS are started once per
session; every app or server a test starts gets a database and a bucket prefix of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.backends.backend import Backend
from tests.backends.migrated_schemas import MigratedSchemas
from tests.backends.postgres import PostgresServer, postgres_bin
from tests.backends.seaweedfs import SeaweedFS

BACKENDS = ["sqlite", "postgresql+s3"]


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


@pytest.fixture(scope="session")
def migrated_schemas(postgres_server: PostgresServer) -> Iterator[MigratedSchemas]:
    schemas = MigratedSchemas(postgres_server)
    try:
        yield schemas
    finally:
        schemas.close()


@pytest.fixture(scope="session")
def s3_credentials(seaweedfs: SeaweedFS) -> Iterator[SeaweedFS]:
    """SeaweedFS's credentials in this process's environment, where S3 clients look, for the
    session: in-process apps and the servers tests start (which inherit it) both find them."""
    saved = {name: os.environ.get(name) for name in seaweedfs.environment()}
    os.environ.update(seaweedfs.environment())
    try:
        yield seaweedfs
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _backend(request: pytest.FixtureRequest) -> Backend:
    name = str(request.param)
    if name == "sqlite":
        return Backend(name)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    s3: SeaweedFS = request.getfixturevalue("s3_credentials")
    schemas: MigratedSchemas = request.getfixturevalue("migrated_schemas")
    return Backend(name, server, s3, schemas)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return _backend(request)


@pytest.fixture(scope="session", params=BACKENDS)
def session_backend(request: pytest.FixtureRequest) -> Backend:
    return _backend(request)
