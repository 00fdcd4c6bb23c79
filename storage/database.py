"""The SQLite database: one writer connection for transactions, one for reads, and migrations.

WAL mode lets reads proceed while a write commits; `synchronous=NORMAL` keeps every commit
durable against a process crash (the WAL is in the OS's hands once written), and the busy
timeout lets several worker processes share one file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

Row = sqlite3.Row
Params = Sequence[Any]

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
)


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    async def open(self) -> None:
        self._writer = await self._connect()
        self._reader = await self._connect()
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

    @property
    def writer(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise RuntimeError("database is not open")
        return self._writer

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("database is not open")
        return self._reader

    async def migrate(self, component: str, migrations: Iterable[str]) -> None:
        """Apply, in order, the migrations of `component` not yet applied to this file."""
        async with self.transaction() as conn:
            rows = await conn.execute_fetchall(
                "SELECT version FROM schema_migrations WHERE component = ?", (component,)
            )
            done = int(next(iter(rows))[0]) if rows else 0
            steps = list(migrations)
            for script in steps[done:]:
                for statement in _statements(script):
                    await conn.execute(statement)
            if len(steps) > done:
                await conn.execute(
                    "INSERT INTO schema_migrations (component, version) VALUES (?, ?)"
                    " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                    (component, len(steps)),
                )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """An IMMEDIATE transaction on the writer: committed on exit, rolled back on error."""
        async with self._write_lock:
            conn = self.writer
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.reader.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return list(await self.reader.execute_fetchall(sql, params))

    async def execute(self, sql: str, params: Params = ()) -> int:
        """One write statement in its own transaction; returns the number of rows changed."""
        async with self.transaction() as conn:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount


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
