"""PostgreSQL: the engine replicas share, through a pool of asyncpg connections.

Write transactions take one transaction-level advisory lock first, so they run one at a time
across every replica, as SQLite's do within one machine: a check a transaction makes (is this
repository frozen? does this blob exist?) still holds when it commits, with no retry loop.
Reads take no lock and see the last committed state (READ COMMITTED).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

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
from storage.dialects import postgres_ddl, postgres_query

# Keys of pg_advisory_xact_lock: any fixed 64-bit numbers no other application on the
# database uses ("beakerd" in ASCII, then a counter).
WRITE_LOCK = 0x6265616B657264_00
MIGRATION_LOCK = 0x6265616B657264_01

_BEGIN_WRITE = f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"

# SQLite's functions that beakerd's SQL uses and PostgreSQL lacks, defined on PostgreSQL so
# that one text serves both engines.
_COMPATIBILITY = """
CREATE OR REPLACE FUNCTION instr(haystack TEXT, needle TEXT) RETURNS INTEGER
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT strpos(haystack, needle) $$
"""


def is_postgres_url(url: str) -> bool:
    return urlsplit(url).scheme in ("postgresql", "postgres")


@dataclass(frozen=True, slots=True)
class _Status:
    rowcount: int


def _rowcount(status: str) -> int:
    """The count at the end of a command tag such as `UPDATE 3` or `INSERT 0 1`."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


class _PostgresConnection:
    """One pooled connection inside a transaction, taking beakerd's `?` SQL."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def execute(self, sql: str, parameters: Params = ()) -> _Status:
        return _Status(_rowcount(await self._conn.execute(postgres_query(sql), *parameters)))

    async def execute_fetchall(self, sql: str, parameters: Params = ()) -> list[Row]:
        return list(await self._conn.fetch(postgres_query(sql), *parameters))

    async def executemany(self, sql: str, parameters: Iterable[Params]) -> None:
        await self._conn.executemany(postgres_query(sql), [tuple(p) for p in parameters])


class PostgresDatabase(Database):
    dialect: Dialect = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 10, connect_seconds: float = 30.0) -> None:
        self.url = url
        self._pool_size = pool_size
        self._connect_seconds = connect_seconds
        self._pool: Any = None

    def describe(self) -> str:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    async def open(self) -> None:
        self._pool = await self._create_pool()
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " component TEXT PRIMARY KEY, version BIGINT NOT NULL)"
            )
            await conn.execute(_COMPATIBILITY)

    async def _create_pool(self) -> Any:
        """A pool, once the server answers: replicas may start before their database does."""
        deadline = time.monotonic() + self._connect_seconds
        delay = 0.1
        while True:
            try:
                return await asyncpg.create_pool(
                    self.url, min_size=1, max_size=self._pool_size, command_timeout=60
                )
            except (TimeoutError, OSError, asyncpg.CannotConnectNowError) as e:
                if time.monotonic() + delay > deadline:
                    raise self._unavailable(e) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as e:
                raise self._unavailable(e) from None  # wrong password, no such database...

    def _unavailable(self, error: Exception) -> DatabaseUnavailable:
        reason = str(error) or type(error).__name__
        return DatabaseUnavailable(f"cannot open the database {self.describe()}: {reason}")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        self._pool = None

    def _open(self) -> Any:
        if self._pool is None:
            raise RuntimeError("database is not open")
        return self._pool

    async def migrate(self, component: str, migrations: Iterable[Migration]) -> None:
        # Replicas starting together queue on the lock; each then finds the work done.
        async with self._open().acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
            done = await conn.fetchval(
                "SELECT version FROM schema_migrations WHERE component = $1", component
            )
            steps = list(migrations)
            for step in steps[done or 0 :]:
                # No arguments: the script may hold several statements.
                await conn.execute(postgres_ddl(migration_script(step, self.dialect)))
            if len(steps) > (done or 0):
                await conn.execute(
                    "INSERT INTO schema_migrations (component, version) VALUES ($1, $2)"
                    " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                    component,
                    len(steps),
                )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._open().acquire() as conn:
            # BEGIN and the lock in one round trip (the simple protocol takes both); a
            # connection given back mid-transaction (a cancelled task) is rolled back by the
            # pool's reset.
            await conn.execute(_BEGIN_WRITE)
            try:
                yield _PostgresConnection(conn)
            except BaseException:
                # The first error is the one to report; a broken connection is the pool's.
                with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return list(await self._open().fetch(postgres_query(sql), *params))

    @asynccontextmanager
    async def try_advisory_lock(self, work: str) -> AsyncIterator[bool]:
        """The session-level advisory lock of `work`, if free: yields whether it was taken.

        It is held on a pooled connection kept for the block; a lost connection or a dead
        process releases it with the session. The pool resets a connection it gets back (asyncpg
        unlocks every advisory lock then), so even a failed unlock leaves nothing held.
        """
        async with self._open().acquire() as conn:
            # Keyed by schema as well: stores that share a database in schemas of their own
            # (as the tests' do) each have their own lock.
            key = await conn.fetchval(
                "SELECT hashtextextended(current_schema() || ':beakerd ' || $1, 0)", work
            )
            taken = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))
            try:
                yield taken
            finally:
                if taken:
                    await conn.execute("SELECT pg_advisory_unlock($1)", key)
