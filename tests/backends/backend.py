"""What a test needs to know of the backend it runs on."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.database import Database, open_database
from tests.backends.postgres import PostgresServer


@dataclass(frozen=True)
class Backend:
    """A kind of backend; each call of `settings` or `args` gives a new, empty store on it."""

    name: str
    postgres: PostgresServer | None = None

    def settings(self) -> dict[str, Any]:
        """Settings for an in-process app."""
        if self.postgres is None:
            return {}
        # A thread of its own: async fixtures call this with their event loop running.
        with ThreadPoolExecutor(1) as thread:
            url = thread.submit(asyncio.run, self.postgres.create_database()).result()
        return {"database": url}

    def args(self) -> list[str]:
        """The same, as flags of `beakerd serve`."""
        flags: list[str] = []
        for key, value in self.settings().items():
            flags += [f"--{key.replace('_', '-')}", str(value)]
        return flags

    async def args_in_loop(self) -> list[str]:
        """`args()`, for a test already running in an event loop."""
        if self.postgres is None:
            return []
        return ["--database", await self.postgres.create_database()]

    async def open_database(self, data_dir: Path) -> Database:
        """A new, empty, open database (not migrated): SQLite's in `data_dir`."""
        url = await self.postgres.create_database() if self.postgres is not None else None
        db = open_database(url, data_dir)
        await db.open()
        return db
