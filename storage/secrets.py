"""Secrets the server makes once and every replica must share (the registry's signing key).

Replicas starting together each offer a fresh value; the first insert wins (`ON CONFLICT DO
NOTHING`) and every replica then reads back the one that landed, so all sign with one key.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from storage.database import Database


async def shared_secret(db: Database, name: str, make: Callable[[], bytes]) -> bytes:
    """The secret called `name`; made with `make` when no process has made it yet."""
    await db.execute(
        "INSERT INTO server_secrets (name, value, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO NOTHING",
        (name, make(), time.time()),
    )
    row = await db.fetchone("SELECT value FROM server_secrets WHERE name = ?", (name,))
    if row is None:
        raise RuntimeError(f"server secret {name!r} vanished right after it was stored")
    return bytes(row[0])
