"""Work that one process at a time may do over a store: a GC pass, a scrub pass, a repair.

Whoever else tries meanwhile is refused at once (and skips its turn) rather than queued. On
SQLite every process is on one machine and the lock is an flock on a file of the data folder
(storage/file_lock.py); replicas share only the database, so on PostgreSQL it is a session-level
advisory lock (`pg_try_advisory_lock`), held on a connection of its own for the whole pass. A
process that dies, however abruptly, releases either: the kernel closes the file, the server
ends the session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

from storage.database import Database
from storage.file_lock import exclusive

Work = Literal["gc", "scrub"]


@asynccontextmanager
async def one_at_a_time(
    db: Database, data_dir: Path, work: Work, busy: Exception
) -> AsyncIterator[None]:
    """Hold the lock of `work` for the block, or raise `busy` at once if another process has it."""
    if db.dialect == "postgresql":
        from storage.postgres import PostgresDatabase

        assert isinstance(db, PostgresDatabase)
        async with db.try_advisory_lock(work) as taken:
            if not taken:
                raise busy
            yield
        return
    with exclusive(data_dir / f"{work}.lock", busy):
        yield
