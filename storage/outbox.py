"""The webhook outbox: events waiting for delivery, as rows written with the change they report.

An event row is inserted in the very transaction that makes the change (a manifest push, a
delete, an image commit), so an acknowledged change always has its event and a rolled-back one
never does, whatever kill comes in between. Events with no transaction of their own (a pull, a
quota refusal, whose push was rolled back) get one.

One row per (event, endpoint) subscribing to it, so each endpoint is retried on its own. A
delivery task in each process (beakerd/webhooks.py) claims due rows by pushing their
`next_attempt_at` past a lease (on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so replicas take
different rows), posts them outside any transaction, then deletes them or schedules a retry. A
process killed mid-delivery leaves its claims to be taken again when the lease runs out: at
least one delivery, possibly more (an event's `id` lets receivers drop repeats).

The outbox is bounded: past `max_rows` the oldest rows are dropped, and so are rows that ran
out of attempts; both are counted in `webhook_counters` for `/metrics`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from storage.database import Connection, Database

Event = Literal["push", "delete", "pull", "image_commit", "quota_exceeded"]
EVENTS: tuple[Event, ...] = ("push", "delete", "pull", "image_commit", "quota_exceeded")


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    url: str
    secret: str
    events: frozenset[str]


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    endpoint: Endpoint
    event: str
    body: bytes
    attempts: int


_CLAIM = (
    "SELECT id, endpoint, event, payload, attempts FROM webhook_outbox"
    " WHERE next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?"
)


class Outbox:
    def __init__(
        self,
        db: Database,
        endpoints: Sequence[Endpoint] = (),
        *,
        max_rows: int = 10000,
        max_attempts: int = 12,
    ) -> None:
        self.db = db
        self.endpoints = {endpoint.name: endpoint for endpoint in endpoints}
        self.max_rows = max_rows
        self.max_attempts = max_attempts

    def wants(self, event: Event) -> bool:
        return any(event in endpoint.events for endpoint in self.endpoints.values())

    async def record(self, conn: Connection, event: Event, data: Mapping[str, Any]) -> None:
        """Queue `event` for every endpoint subscribing to it, inside the caller's transaction."""
        targets = [e.name for e in self.endpoints.values() if event in e.events]
        if not targets:
            return
        now = time.time()
        body = json.dumps(
            {"id": str(uuid.uuid4()), "event": event, "timestamp": now, **data},
            separators=(",", ":"),
        )
        await conn.executemany(
            "INSERT INTO webhook_outbox (endpoint, event, payload, created_at, attempts,"
            " next_attempt_at) VALUES (?, ?, ?, ?, 0, ?)",
            [(name, event, body, now, now) for name in targets],
        )
        rows = list(await conn.execute_fetchall("SELECT count(*) FROM webhook_outbox"))
        excess = int(rows[0][0]) - self.max_rows
        if excess > 0:
            # The oldest go first: a dead endpoint's backlog makes room for fresh events.
            await conn.execute(
                "DELETE FROM webhook_outbox WHERE id IN"
                " (SELECT id FROM webhook_outbox ORDER BY id LIMIT ?)",
                (excess,),
            )
            await _count(conn, "dropped_overflow", excess)

    async def record_alone(self, event: Event, data: Mapping[str, Any]) -> None:
        """`record` in a transaction of its own, for events that change nothing else."""
        if self.wants(event):
            async with self.db.transaction() as conn:
                await self.record(conn, event, data)

    async def claim(self, limit: int, lease_seconds: float) -> list[Delivery]:
        """Due rows, leased to this process for `lease_seconds`."""
        now = time.time()
        claim = _CLAIM + (" FOR UPDATE SKIP LOCKED" if self.db.dialect == "postgresql" else "")
        claimed: list[Delivery] = []
        async with self.db.transaction() as conn:
            rows = list(await conn.execute_fetchall(claim, (now, limit)))
            gone = []
            for row in rows:
                endpoint = self.endpoints.get(str(row[1]))
                if endpoint is None:
                    gone.append(int(row[0]))  # the endpoint left the configuration
                    continue
                claimed.append(
                    Delivery(int(row[0]), endpoint, str(row[2]), str(row[3]).encode(), int(row[4]))
                )
            await conn.executemany(
                "UPDATE webhook_outbox SET next_attempt_at = ? WHERE id = ?",
                [(now + lease_seconds, d.id) for d in claimed],
            )
            if gone:
                await conn.executemany(
                    "DELETE FROM webhook_outbox WHERE id = ?", [(i,) for i in gone]
                )
                await _count(conn, "dropped_unconfigured", len(gone))
        return claimed

    async def delivered(self, delivery: Delivery) -> None:
        await self.db.execute("DELETE FROM webhook_outbox WHERE id = ?", (delivery.id,))

    async def failed(self, delivery: Delivery, error: str, retry_in: float) -> bool:
        """Schedule another attempt; False (and the row dropped) when attempts ran out."""
        attempts = delivery.attempts + 1
        async with self.db.transaction() as conn:
            if attempts >= self.max_attempts:
                await conn.execute("DELETE FROM webhook_outbox WHERE id = ?", (delivery.id,))
                await _count(conn, "dropped_failed", 1)
                return False
            await conn.execute(
                "UPDATE webhook_outbox SET attempts = ?, next_attempt_at = ?, last_error = ?"
                " WHERE id = ?",
                (attempts, time.time() + retry_in, error[:500], delivery.id),
            )
        return True

    async def stats(self) -> dict[str, int]:
        """Rows waiting, and events dropped by reason (overflow, failed, unconfigured)."""
        pending = await self.db.fetchone("SELECT count(*) FROM webhook_outbox")
        counters = await self.db.fetchall("SELECT name, value FROM webhook_counters")
        return {
            "pending": int(pending[0]) if pending else 0,
            **{str(row[0]): int(row[1]) for row in counters},
        }


async def _count(conn: Connection, name: str, amount: int) -> None:
    await conn.execute(
        "INSERT INTO webhook_counters (name, value) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET value = webhook_counters.value + excluded.value",
        (name, amount),
    )
