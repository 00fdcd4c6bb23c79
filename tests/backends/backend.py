"""What a test needs to know of the backend it runs on."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from storage.database import Database, open_database
from tests.backends.migrated_schemas import MigratedSchemas
from tests.backends.postgres import PostgresServer
from tests.backends.seaweedfs import SeaweedFS


@dataclass(frozen=True)
class Backend:
    """A kind of backend; each call of `settings` or `args` gives a new, empty store on it."""

    name: str
    postgres: PostgresServer | None = None
    s3: SeaweedFS | None = None
    schemas: MigratedSchemas | None = None

    def settings(self) -> dict[str, Any]:
        """Settings for an in-process app (the S3 credentials are in the environment)."""
        settings: dict[str, Any] = {}
        if self.schemas is not None:
            settings["database"] = self.schemas.take()
        if self.s3 is not None:
            # The endpoint and credentials are in the environment (fixture s3_credentials).
            settings["blob_store"] = f"s3://{self.s3.bucket}/{uuid.uuid4().hex[:12]}"
        return settings

    def args(self) -> list[str]:
        """The same, as flags of `beakerd serve`."""
        flags: list[str] = []
        for key, value in self.settings().items():
            flags += [f"--{key.replace('_', '-')}", str(value)]
        return flags

    def database_settings(self) -> dict[str, Any]:
        """The database alone, for a test that chooses the blob store itself."""
        return {"database": self.settings()["database"]} if self.postgres is not None else {}

    def database_args(self) -> list[str]:
        """`--database` alone, for a test that looks at the data folder's files."""
        return [
            arg for key, value in self.database_settings().items() for arg in (f"--{key}", value)
        ]

    async def open_database(self, data_dir: Path) -> Database:
        # Not a migrated schema: the tests that open a database themselves migrate it.
        """A new, empty, open database (not migrated): SQLite's in `data_dir`."""
        url = await self.postgres.create_database() if self.postgres is not None else None
        db = open_database(url, data_dir)
        await db.open()
        return db


# For a test that looks into the data folder's files (S3's own tests are in tests/storage_s3).
file_store_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
