"""The change counter of replicas: one database row, polled by every process in the background.

Replicas share nothing but the database and the object store, so the counter is the row
`change_counters.value` (name 'registry'). Readers never query it: a background task reads the
row every `poll_seconds` and moves this process's own value when the row moved, so a hot path
still costs one attribute read. A bump commits the row's increment (other replicas see it at
their next poll, within `poll_seconds`) and moves the local value at once (this replica's own
caches never lag).

A poll that fails (the database unreachable) moves the local value too: while the counter
cannot be read, nothing cached may be trusted, least of all that a token is still live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from storage.database import Database

log = logging.getLogger("beakerd.generation")

POLL_SECONDS = 0.2
_NAME = "registry"
_READ = "SELECT value FROM change_counters WHERE name = ?"
_BUMP = "UPDATE change_counters SET value = value + 1 WHERE name = ? RETURNING value"


class RowGeneration:
    def __init__(self, db: Database, seen: int, poll_seconds: float) -> None:
        self._db = db
        # The row's value when this process last read or wrote it.
        self._seen = seen
        # What readers compare: moves whenever `_seen` does, and on every failed poll.
        self._value = 0
        self._poll_seconds = poll_seconds
        self._poller: asyncio.Task[None] | None = None
        self._failing = False

    @classmethod
    async def open(cls, db: Database, poll_seconds: float = POLL_SECONDS) -> RowGeneration:
        generation = cls(db, await _read(db), poll_seconds)
        generation._poller = asyncio.create_task(generation._poll())
        return generation

    @property
    def value(self) -> int:
        return self._value

    async def bump(self) -> None:
        async with self._db.transaction() as conn:
            rows = list(await conn.execute_fetchall(_BUMP, (_NAME,)))
        self._seen = int(rows[0][0])
        self._value += 1

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        self._poller = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                seen = await _read(self._db)
            except Exception as e:
                self._value += 1
                if not self._failing:
                    log.warning("cannot read the change counter (caches are bypassed): %s", e)
                self._failing = True
                continue
            if self._failing:
                log.info("change counter readable again")
                self._failing = False
            if seen != self._seen:
                self._seen = seen
                self._value += 1


async def _read(db: Database) -> int:
    row = await db.fetchone(_READ, (_NAME,))
    if row is None:
        raise RuntimeError("change_counters has no 'registry' row: the migration did not run")
    return int(row[0])
