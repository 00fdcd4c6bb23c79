"""The metadata database, whichever engine runs it: the interface the layers above use.

Two engines stand behind it: SQLite (storage/sqlite.py, the embedded default: one file in the
data folder) and PostgreSQL (storage/postgres.py, shared by replicas). Both take the same SQL:
`?` placeholders, standard SQL (`ON CONFLICT`, `RETURNING`, recursive CTEs) and the few
differences spelled through `Database.dialect` where no common form exists. Migrations are
written once in SQLite's DDL and translated (storage/dialects.py).

Write transactions are serialized on both engines (SQLite's single writer; a transaction-level
advisory lock on PostgreSQL), so a check made inside a transaction holds until it commits,
whichever replica runs it.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Literal, Protocol

import asyncpg

Params = Sequence[Any]
Dialect = Literal["sqlite", "postgresql"]
# One migration step: a script for both engines (SQLite's DDL, translated for PostgreSQL), or,
# where they have no common form (triggers), one script per engine.
Migration = str | Mapping[Dialect, str]

# What a uniqueness, foreign-key or check constraint refusing a write raises, on either engine.
IntegrityError: tuple[type[Exception], ...] = (
    sqlite3.IntegrityError,
    asyncpg.IntegrityConstraintViolationError,
)
# Any failure the engine reports (full disk, lost connection, constraint...), on either engine.
DatabaseError: tuple[type[Exception], ...] = (sqlite3.Error, asyncpg.PostgresError)


class DatabaseUnavailable(Exception):
    """The database cannot be opened; the message is one line for the operator."""


class Row(Protocol):
    """A result row, read by column name or position (sqlite3.Row and asyncpg.Record both)."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def keys(self) -> Any: ...


class Result(Protocol):
    @property
    def rowcount(self) -> int: ...


class Connection(Protocol):
    """A connection inside a transaction."""

    async def execute(self, sql: str, parameters: Params = ..., /) -> Result: ...

    async def execute_fetchall(self, sql: str, parameters: Params = ..., /) -> Iterable[Any]: ...

    async def executemany(self, sql: str, parameters: Iterable[Params], /) -> Any: ...


class Database(ABC):
    dialect: Dialect

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def migrate(self, component: str, migrations: Iterable[Migration]) -> None:
        """Apply, in order, the migrations of `component` not yet applied; once, however many
        processes or replicas start together."""

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """A write transaction: committed on exit, rolled back on error, serialized with every
        other write transaction."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        return next(iter(await self.fetchall(sql, params)), None)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """One write statement in its own transaction; returns the number of rows changed."""
        async with self.transaction() as conn:
            return (await conn.execute(sql, params)).rowcount

    def describe(self) -> str:
        """Where the database is, for logs and /readyz, without credentials."""
        return self.dialect


def migration_script(step: Migration, dialect: Dialect) -> str:
    """The text of one migration step for `dialect` (not yet translated for PostgreSQL)."""
    return step if isinstance(step, str) else step[dialect]


def open_database(url: str | None, data_dir: Path, connect_seconds: float = 30.0) -> Database:
    """The database a `--database` URL names (SQLite in the data folder when None)."""
    from storage.postgres import PostgresDatabase, is_postgres_url
    from storage.sqlite import SqliteDatabase, sqlite_path

    if url is None:
        return SqliteDatabase(data_dir / "beakerd.db")
    if is_postgres_url(url):
        return PostgresDatabase(url, connect_seconds=connect_seconds)
    return SqliteDatabase(sqlite_path(url))
