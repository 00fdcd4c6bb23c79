"""Cluster-wide claims on pull-through fetches: one upstream fetch of a blob across every
process (replica) on the database, not one per process.

A process that misses a blob claims its digest in a write transaction before it asks the
upstream: a row naming the claiming process, with an expiry that the fetch keeps pushing back
(a heartbeat) while it runs. Another process finding a live claim does not fetch; it waits for
the blob to land in the store, looking again now and then (registry/proxy.py). The claim goes
once the blob is stored (or the fetch failed). A claim whose owner died (kill -9: no more
heartbeats) expires, and the next process to miss the blob takes it over, so no client waits
for a dead fetch for longer than the expiry.

The SQL is the same on SQLite (where the write lock makes one claim win) and PostgreSQL (where
the primary key does: a second INSERT waits for the first to commit, then does nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator

from storage.database import Database

log = logging.getLogger("beakerd.proxy")

# How long a claim lives without a heartbeat: what a kill -9 costs the clients waiting on it.
CLAIM_SECONDS = 15.0
# A running fetch renews its claim this often, well within its life.
HEARTBEAT_SECONDS = CLAIM_SECONDS / 3


def process_owner() -> str:
    """A name for this process that no other process on any machine shares."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class FillClaims:
    def __init__(self, db: Database, owner: str) -> None:
        self.db = db
        self.owner = owner

    async def claim(self, digest: str) -> bool:
        """Whether this process now holds the fetch of `digest`: False while another process
        holds a live claim; an expired claim (its owner died) is taken over."""
        now = time.time()
        async with self.db.transaction() as conn:
            # Expired claims go here (the table holds only fetches in flight), the one on
            # `digest` included: that is the takeover.
            await conn.execute("DELETE FROM blob_fill_claims WHERE expires_at < ?", (now,))
            await conn.execute(
                "INSERT INTO blob_fill_claims (digest, owner, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (digest) DO NOTHING",
                (digest, self.owner, now + CLAIM_SECONDS),
            )
            rows = list(
                await conn.execute_fetchall(
                    "SELECT owner FROM blob_fill_claims WHERE digest = ?", (digest,)
                )
            )
        return bool(rows) and rows[0][0] == self.owner

    @contextlib.asynccontextmanager
    async def held(self, digest: str) -> AsyncIterator[None]:
        """Around the fetch of a claimed `digest`: the claim renewed while it runs, let go
        after (the blob is in the store, or the next miss may try again)."""
        heartbeat = asyncio.create_task(self._heartbeat(digest))
        try:
            yield
        finally:
            heartbeat.cancel()
            try:
                await self.release(digest)
            except Exception:
                # The claim runs out by itself; the fetch's own outcome is what callers hear.
                log.exception("letting go of the fetch claim on %s failed", digest)

    async def _heartbeat(self, digest: str) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self.renew(digest)
            except Exception:
                log.exception("renewing the fetch claim on %s failed", digest)

    async def renew(self, digest: str) -> None:
        """The heartbeat of a running fetch."""
        await self.db.execute(
            "UPDATE blob_fill_claims SET expires_at = ? WHERE digest = ? AND owner = ?",
            (time.time() + CLAIM_SECONDS, digest, self.owner),
        )

    async def release(self, digest: str) -> None:
        """Let go of this process's claim on `digest`."""
        await self.db.execute(
            "DELETE FROM blob_fill_claims WHERE digest = ? AND owner = ?", (digest, self.owner)
        )

    async def held_elsewhere(self, digest: str) -> bool:
        """Whether another process holds a live claim on `digest`."""
        row = await self.db.fetchone(
            "SELECT 1 FROM blob_fill_claims WHERE digest = ? AND owner <> ? AND expires_at >= ?",
            (digest, self.owner, time.time()),
        )
        return row is not None
