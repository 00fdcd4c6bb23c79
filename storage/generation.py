"""The change counter: how every process serving one store learns that cached facts went stale.

Caches of mutable facts (which digest a tag names, which manifests a repository holds, whether
an API token or a Beaker image still stands) are valid while the counter stands still. Writers
bump it after each commit that could make a cached fact false; readers compare it with the
value they cached under. Reading it is one memory read, never a database query, whichever
implementation runs:
- on SQLite (one machine), an mmap'd file in the data folder shared by every worker process
  (storage/generation_file.py): a bump is seen by the next read;
- on PostgreSQL (replicas on several machines), a row of the database that each process polls
  in the background (storage/generation_row.py): a bump is seen elsewhere within one poll
  interval, and by the bumping process at once.
`bump` returns once the change is visible to the other processes, so a request that revokes
something answers only when every replica will stop honouring it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from storage.database import Database


class Generation(Protocol):
    @property
    def value(self) -> int:
        """The counter as this process last saw it; changes whenever any process bumped it."""
        ...

    async def bump(self) -> None: ...

    async def close(self) -> None: ...


async def open_generation(db: Database, data_dir: Path) -> Generation:
    """The counter every process using `db` shares: a file beside SQLite, a row on PostgreSQL."""
    if db.dialect == "postgresql":
        from storage.generation_row import RowGeneration

        return await RowGeneration.open(db)
    from storage.generation_file import FileGeneration

    return FileGeneration(data_dir / "generation")
