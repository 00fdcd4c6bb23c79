"""Migrated PostgreSQL schemas for the tests' apps and servers, made ahead of time.

A test on PostgreSQL starts an app on a schema of its own, and migrating an empty schema costs
about 0.3 s of DDL, most of it in PostgreSQL's process. So the migrations run once, into a
template schema, which `pg_dump` turns into SQL; a thread then replays that SQL into fresh
schemas while the tests run, keeping a few ready. The app still runs its migrations at start,
and finds them applied. Tests of migrating itself take an empty schema instead
(`PostgresServer.create_database`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import tempfile
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import asyncpg

from metadata.schema import MIGRATIONS as METADATA_MIGRATIONS
from storage.database import Database
from storage.postgres import PostgresDatabase
from storage.schema import MIGRATIONS as STORAGE_MIGRATIONS
from tests.backends.postgres import USER, PostgresServer

# Unlike any word of the schema's DDL or data, so that replacing it renames only the schema.
_TEMPLATE = "beakerd_template_schema"
_AHEAD = 3


async def migrated(db: Database) -> Database:
    """`db` with the migrations a server runs at start, in its order."""
    await db.migrate("storage", STORAGE_MIGRATIONS)
    await db.migrate("metadata", METADATA_MIGRATIONS)
    return db


class MigratedSchemas:
    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self._sql: str | None = None
        self._lock = threading.Lock()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="migrated-schemas")
        self._ready: deque[Future[str]] = deque()

    def take(self) -> str:
        """The URL of a new schema holding every migration, none of the tests' data."""
        with self._lock:
            if self._sql is None:
                self._sql = self._thread.submit(asyncio.run, self._template()).result()
            while len(self._ready) < _AHEAD + 1:
                self._ready.append(self._thread.submit(asyncio.run, self._copy(self._sql)))
            return self._ready.popleft().result()

    def close(self) -> None:
        self._thread.shutdown(cancel_futures=True)

    async def _template(self) -> str:
        conn = await asyncpg.connect(self.server.url())
        try:
            await conn.execute(f"CREATE SCHEMA {_TEMPLATE}")
        finally:
            await conn.close()
        db = PostgresDatabase(f"{self.server.url()}?search_path={_TEMPLATE}")
        await db.open()
        try:
            await migrated(db)
        finally:
            await db.close()
        return self._dump()

    def _dump(self) -> str:
        """The template as plain SQL: INSERTs, not COPY, which only psql can feed."""
        with tempfile.TemporaryDirectory() as empty:  # pg_dump wants a readable cwd
            dumped = subprocess.run(
                [str(self.server.bin / "pg_dump"), "-h", "127.0.0.1", "-p", str(self.server.port),
                 "-U", USER, "--schema", _TEMPLATE, "--no-owner", "--no-privileges", "--inserts",
                 "postgres"],
                env=dict(os.environ, PGPASSWORD=self.server.password), cwd=Path(empty),
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
        if dumped.returncode != 0:
            raise RuntimeError(f"pg_dump failed: {dumped.stderr}")
        # Lines such as `\restrict KEY` are psql's meta-commands, not SQL.
        return "\n".join(line for line in dumped.stdout.splitlines() if not line.startswith("\\"))

    async def _copy(self, sql: str) -> str:
        name = f"t_{secrets.token_hex(6)}"
        conn = await asyncpg.connect(self.server.url())
        try:
            await conn.execute(sql.replace(_TEMPLATE, name))
        finally:
            await conn.close()
        return f"{self.server.url()}?search_path={name}"
