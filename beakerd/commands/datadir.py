"""The data folder's database, opened for a command that runs beside (or without) the server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from beakerd.settings import Settings
from storage.database import Database
from storage.schema import MIGRATIONS as STORAGE_MIGRATIONS


@asynccontextmanager
async def open_database(
    settings: Settings, extra_migrations: Sequence[tuple[str, list[str]]] = ()
) -> AsyncIterator[Database]:
    """The database, migrated like the server would (storage first, then `extra_migrations`)."""
    db = Database(settings.data_dir / "beakerd.db")
    await db.open()
    try:
        await db.migrate("storage", STORAGE_MIGRATIONS)
        for component, migrations in extra_migrations:
            await db.migrate(component, migrations)
        yield db
    finally:
        await db.close()
