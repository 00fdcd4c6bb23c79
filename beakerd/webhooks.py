"""Webhook delivery: drains the outbox (storage/outbox.py) to the configured endpoints.

Each event is POSTed as its JSON body with `X-Beakerd-Event`, `X-Beakerd-Delivery` (the
event's id, the same on a repeat) and `X-Beakerd-Signature-256: sha256=<hex>`, the HMAC-SHA256
of the exact body under the endpoint's secret. Any 2xx is a delivery; anything else, a timeout
or a refused connection is retried after 1, 2, 4 ... seconds, at most an hour apart, until the
attempts run out.

Pushes never wait on this: they only insert rows. One task per process claims a batch, posts
its deliveries concurrently with a timeout each, and sleeps when nothing is due; several
replicas share the work through the outbox's claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator

import aiohttp

from storage.outbox import Delivery, Outbox

log = logging.getLogger("beakerd.webhooks")

SIGNATURE_HEADER = "X-Beakerd-Signature-256"
# How many deliveries one process has in flight at once, and how long it waits when idle.
BATCH = 16
IDLE_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 3600.0


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempts: int) -> float:
    """Seconds before the next try, after `attempts` failed ones (1 s, doubling, capped)."""
    return float(min(MAX_BACKOFF_SECONDS, 2.0 ** max(attempts - 1, 0)))


class Deliverer:
    def __init__(self, outbox: Outbox, timeout_seconds: float) -> None:
        self.outbox = outbox
        self.timeout = timeout_seconds
        self.delivered = 0
        self.failures = 0

    async def run(self) -> None:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout)
        ) as session:
            while True:
                try:
                    sent = await self.drain_once(session)
                except Exception:
                    log.exception("webhooks: delivery pass failed")
                    sent = 0
                if sent == 0:
                    await asyncio.sleep(IDLE_SECONDS)

    async def drain_once(self, session: aiohttp.ClientSession) -> int:
        """Claim and attempt one batch; returns how many were attempted."""
        # The lease outlasts the request's timeout, so no other process retries it meanwhile.
        batch = await self.outbox.claim(BATCH, lease_seconds=self.timeout + 30)
        await asyncio.gather(*(self._deliver(session, d) for d in batch))
        return len(batch)

    async def _deliver(self, session: aiohttp.ClientSession, delivery: Delivery) -> None:
        endpoint = delivery.endpoint
        event_id = _event_id(delivery.body)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "beakerd-webhooks",
            "X-Beakerd-Event": delivery.event,
            "X-Beakerd-Delivery": event_id,
            SIGNATURE_HEADER: signature(endpoint.secret, delivery.body),
        }
        try:
            async with session.post(endpoint.url, data=delivery.body, headers=headers) as answer:
                await answer.read()
                error = None if 200 <= answer.status < 300 else f"HTTP {answer.status}"
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            error = f"{type(e).__name__}: {e}"
        if error is None:
            self.delivered += 1
            await self.outbox.delivered(delivery)
            return
        self.failures += 1
        retried = await self.outbox.failed(delivery, error, backoff(delivery.attempts + 1))
        log.log(
            logging.INFO if retried else logging.WARNING,
            "webhooks: %s to %s failed (%s)%s",
            delivery.event,
            endpoint.name,
            error,
            "" if retried else "; attempts exhausted, event dropped",
        )


def _event_id(body: bytes) -> str:
    try:
        return str(json.loads(body).get("id", ""))
    except ValueError:
        return ""


@contextlib.asynccontextmanager
async def delivering(outbox: Outbox, timeout_seconds: float) -> AsyncIterator[Deliverer | None]:
    """Run a Deliverer while the server runs, when any endpoint is configured."""
    if not outbox.endpoints:
        yield None
        return
    deliverer = Deliverer(outbox, timeout_seconds)
    task = asyncio.create_task(deliverer.run())
    try:
        yield deliverer
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
