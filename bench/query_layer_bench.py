"""What one query costs through beakerd's query layer, beside the drivers and SQLAlchemy.

    python -m bench.query_layer_bench [--queries N]

Times N sequential single-row look-ups by primary key (the shape of beakerd's per-request
reads: a tag, a token, an image) and N one-row write transactions, on SQLite (a file in a temp
folder) and PostgreSQL (started by tests/backends/postgres.py), through:
- beakerd's layer (storage/sqlite.py, storage/postgres.py);
- the bare driver (aiosqlite, asyncpg): the floor;
- SQLAlchemy 2 async Core on the same drivers (`pip install 'sqlalchemy[asyncio]'`; skipped
  when absent), the alternative the issue names.
Prints microseconds per query (median of 5 rounds) as a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite
import asyncpg

from storage.database import Database
from storage.postgres import PostgresDatabase
from storage.sqlite import SqliteDatabase
from tests.backends.postgres import PostgresServer

_TABLE = ["CREATE TABLE tags (name TEXT PRIMARY KEY, digest TEXT NOT NULL, n INTEGER NOT NULL)"]
_ROWS = 10_000

Step = Callable[[int], Awaitable[object]]


async def _rounds(step: Step, queries: int) -> float:
    """Median microseconds per call of `step` over 5 rounds of `queries` calls."""
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for i in range(queries):
            await step(i)
        times.append((time.perf_counter() - start) / queries * 1e6)
    return statistics.median(times)


async def _fill(db: Database) -> None:
    await db.migrate("bench", _TABLE)
    async with db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO tags (name, digest, n) VALUES (?, ?, ?)",
            [(f"t{i}", f"sha256:{i:064x}", i) for i in range(_ROWS)],
        )


async def _layer(db: Database, queries: int) -> tuple[float, float]:
    async def read(i: int) -> object:
        return await db.fetchone("SELECT digest FROM tags WHERE name = ?", (f"t{i % _ROWS}",))

    async def write(i: int) -> object:
        return await db.execute("UPDATE tags SET n = n + 1 WHERE name = ?", (f"t{i % _ROWS}",))

    return await _rounds(read, queries), await _rounds(write, queries)


async def _sqlalchemy(url: str, queries: int) -> tuple[float, float] | None:
    try:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine
    except ImportError:
        return None
    engine = create_async_engine(url)
    read_sql = text("SELECT digest FROM tags WHERE name = :name")
    write_sql = text("UPDATE tags SET n = n + 1 WHERE name = :name")
    try:
        async with engine.connect() as conn:

            async def read(i: int) -> object:
                return (await conn.execute(read_sql, {"name": f"t{i % _ROWS}"})).first()

            read_us = await _rounds(read, queries)
        async with engine.connect() as conn:

            async def write(i: int) -> object:
                async with conn.begin():
                    return await conn.execute(write_sql, {"name": f"t{i % _ROWS}"})

            write_us = await _rounds(write, queries)
        return read_us, write_us
    finally:
        await engine.dispose()


async def _sqlite(folder: Path, queries: int) -> dict[str, tuple[float, float] | None]:
    path = folder / "bench.db"
    db = SqliteDatabase(path)
    await db.open()
    await _fill(db)
    results: dict[str, tuple[float, float] | None] = {"beakerd": await _layer(db, queries)}
    await db.close()
    async with aiosqlite.connect(path, isolation_level=None) as conn:

        async def read(i: int) -> object:
            return await conn.execute_fetchall(
                "SELECT digest FROM tags WHERE name = ?", (f"t{i % _ROWS}",)
            )

        async def write(i: int) -> object:
            await conn.execute("BEGIN IMMEDIATE")
            await conn.execute("UPDATE tags SET n = n + 1 WHERE name = ?", (f"t{i % _ROWS}",))
            return await conn.execute("COMMIT")

        results["driver"] = (await _rounds(read, queries), await _rounds(write, queries))
    results["sqlalchemy"] = await _sqlalchemy(f"sqlite+aiosqlite:///{path}", queries)
    return results


async def _postgres(queries: int) -> dict[str, tuple[float, float] | None]:
    server = PostgresServer().start()
    try:
        url = await server.create_database()
        db = PostgresDatabase(url)
        await db.open()
        await _fill(db)
        results: dict[str, tuple[float, float] | None] = {"beakerd": await _layer(db, queries)}
        await db.close()
        pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
        try:

            async def read(i: int) -> object:
                return await pool.fetchrow(
                    "SELECT digest FROM tags WHERE name = $1", f"t{i % _ROWS}"
                )

            async def write(i: int) -> object:
                async with pool.acquire() as conn, conn.transaction():
                    return await conn.execute(
                        "UPDATE tags SET n = n + 1 WHERE name = $1", f"t{i % _ROWS}"
                    )

            results["driver"] = (await _rounds(read, queries), await _rounds(write, queries))
        finally:
            await pool.close()
        results["sqlalchemy"] = await _sqlalchemy(
            url.replace("postgresql://", "postgresql+asyncpg://"), queries
        )
        return results
    finally:
        server.stop()


def _table(engines: dict[str, dict[str, tuple[float, float] | None]]) -> str:
    lines = [
        "| engine | through | read by key (µs) | one-row write transaction (µs) |",
        "|---|---|---:|---:|",
    ]
    for engine, results in engines.items():
        for through, figures in results.items():
            if figures is None:
                lines.append(f"| {engine} | {through} | not installed | not installed |")
            else:
                lines.append(f"| {engine} | {through} | {figures[0]:.0f} | {figures[1]:.0f} |")
    return "\n".join(lines)


async def _main(queries: int) -> str:
    with tempfile.TemporaryDirectory() as folder:
        sqlite = await _sqlite(Path(folder), queries)
    return _table({"SQLite": sqlite, "PostgreSQL": await _postgres(queries)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=2000, help="queries per round")
    print(asyncio.run(_main(parser.parse_args(argv).queries)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
