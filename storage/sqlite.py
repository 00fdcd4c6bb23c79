"""SQLite: the embedded engine. One writer connection for transactions, one for reads.

WAL mode lets reads proceed while a write commits; `synchronous=NORMAL` keeps every commit
durable against a process crash (the WAL is in the OS's hands once written), and the busy
timeout lets several worker processes share one file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast
from urllib.parse import unquote, urlsplit

import aiosqlite

from storage.database import (
    Connection,
    Database,
    DatabaseUnavailable,
    Dialect,
    Migration,
    Params,
    Row,
    migration_script,
)

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
)


def sqlite_path(url: str) -> Path:
    """The file a `sqlite:///PATH` URL names."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc or not parts.path or parts.query:
        raise ValueError(
            f"{url!r} is neither sqlite:///PATH nor postgresql://USER:PASS@HOST:PORT/DB"
        )
    return Path(unquote(parts.path))


class SqliteDatabase(Database):
    dialect: Dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    def describe(self) -> str:
        return f"sqlite:///{self.path}"

    async def open(self) -> None:
        try:
            self._writer = await self._connect()
            self._reader = await self._connect()
        except sqlite3.Error as e:
            await self.close()
            raise DatabaseUnavailable(f"cannot open the database {self.path}: {e}") from None
        await self._writer.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in _PRAGMAS:
            await conn.execute(pragma)
        return conn

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    def _open(self, conn: aiosqlite.Connection | None) -> aiosqlite.Connection:
        if conn is None:
            raise RuntimeError("database is not open")
        return conn

    async def migrate(self, component: str, migrations: Iterable[Migration]) -> None:
        async with self.transaction() as conn:
            rows = list(
                await conn.execute_fetchall(
                    "SELECT version FROM schema_migrations WHERE component = ?", (component,)
                )
            )
            done = int(rows[0][0]) if rows else 0
            steps = list(migrations)
            for step in steps[done:]:
                for statement in _statements(migration_script(step, self.dialect)):
                    await conn.execute(statement)
            if len(steps) > done:
                await conn.execute(
                    "INSERT INTO schema_migrations (component, version) VALUES (?, ?)"
                    " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                    (component, len(steps)),
                )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """An IMMEDIATE transaction on the writer: the file's write lock is taken at BEGIN."""
        async with self._write_lock:
            conn = self._open(self._writer)
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield cast(Connection, conn)
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return list(await self._open(self._reader).execute_fetchall(sql, params))


def _statements(script: str) -> list[str]:
    """Split a script at the semicolons that end statements (not those in comments or strings)."""
    statements: list[str] = []
    current = ""
    for piece in script.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip(" \n;"):
        statements.append(current.strip())
    return [s for s in statements if s.strip(" \n;")]
