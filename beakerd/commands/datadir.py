"""The data folder's database, opened for a command that runs beside (or without) the server."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from beakerd.settings import Settings
from storage.blobstore.backend import BlobBackend, open_blob_store
from storage.database import Database, Migration
from storage.database import open_database as storage_database
from storage.postgres import is_postgres_url
from storage.repositories import Repositories
from storage.schema import MIGRATIONS as STORAGE_MIGRATIONS
from storage.sqlite import sqlite_path


def data_exists(settings: Settings, command: str) -> bool:
    """Whether the data folder holds a beakerd database; says so on stderr when it does not."""
    url = settings.database
    if url is not None and is_postgres_url(url):
        return True  # the server's database may be anywhere: opening it tells
    path = sqlite_path(url) if url is not None else settings.data_dir / "beakerd.db"
    if path.exists():
        return True
    print(f"beakerd {command}: no beakerd data in {settings.data_dir}", file=sys.stderr)
    return False


@asynccontextmanager
async def open_database(
    settings: Settings, extra_migrations: Sequence[tuple[str, list[Migration]]] = ()
) -> AsyncIterator[Database]:
    """The database, migrated like the server would (storage first, then `extra_migrations`)."""
    db = storage_database(
        settings.database, settings.data_dir, settings.database_connect_timeout_seconds
    )
    await db.open()
    try:
        await db.migrate("storage", STORAGE_MIGRATIONS)
        for component, migrations in extra_migrations:
            await db.migrate(component, migrations)
        yield db
    finally:
        await db.close()


@asynccontextmanager
async def open_blobs(settings: Settings, db: Database) -> AsyncIterator[BlobBackend]:
    """The blob store the server uses, over `db`."""
    async with open_blob_store(
        settings.blob_location,
        db,
        Repositories(db),
        lock_root=settings.data_dir,
        s3_endpoint=settings.s3_endpoint,
        redirect=settings.blob_redirect,
    ) as backend:
        yield backend
