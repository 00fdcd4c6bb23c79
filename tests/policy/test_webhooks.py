"""Webhooks: events from a durable outbox, signed, delivered at least once, never in the way."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from beakerd.webhooks import SIGNATURE_HEADER
from storage.database import Database, open_database
from storage.outbox import Endpoint, Outbox
from storage.schema import MIGRATIONS
from tests.metadata.helpers import Api, push_latest, repository_of
from tests.policy.conftest import MakeClient, token
from tests.registry.helpers import push_blob, push_image

SECRET = "s3cr3t"
# A bound on waiting for a delivery, not a measure of it.
PATIENCE = 60.0


@dataclass
class Receiver:
    url: str = ""
    received: asyncio.Queue[tuple[dict[str, str], bytes]] = field(default_factory=asyncio.Queue)
    hold: asyncio.Event | None = None
    held: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.hold is not None:
            self.held.set()
            await self.hold.wait()
        await self.received.put((dict(request.headers), body))
        return web.Response(status=204)

    async def next(self) -> tuple[dict[str, str], dict[str, Any]]:
        headers, body = await asyncio.wait_for(self.received.get(), PATIENCE)
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers[SIGNATURE_HEADER] == expected
        return headers, json.loads(body)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    found.url = f"http://127.0.0.1:{port}/hook"
    yield found
    if found.hold is not None:
        found.hold.set()
    await runner.cleanup()


def hooks(receiver: Receiver, *events: str) -> list[dict[str, Any]]:
    return [{"url": receiver.url, "secret": SECRET, "events": list(events)}]


async def test_a_push_is_delivered_as_signed_json(
    make_client: MakeClient, receiver: Receiver
) -> None:
    client = await make_client(webhooks=hooks(receiver, "push", "delete"))
    digest, _ = await push_image(client, "tester/app", "v1", [b"layer"])
    headers, event = await receiver.next()
    assert headers["X-Beakerd-Event"] == "push"
    assert headers["X-Beakerd-Delivery"] == event["id"]
    assert (event["event"], event["repository"], event["tag"], event["digest"]) == (
        "push",
        "tester/app",
        "v1",
        digest,
    )
    assert (await client.delete("/v2/tester/app/manifests/v1")).status == 202
    _, event = await receiver.next()
    assert (event["event"], event["tag"]) == ("delete", "v1")


async def test_an_image_commit_is_an_event_and_its_bytes_count_against_its_author(
    make_client: MakeClient, receiver: Receiver
) -> None:
    client = await make_client(quota_bytes="1M", webhooks=hooks(receiver, "image_commit"))
    api = Api(client, token(client))
    image = await api.create_image("hooked")
    digest, size = await push_latest(client, repository_of(image), [b"layer"], api.admin_basic)
    await api.ok("PATCH", f"/images/{image['id']}", json_body={"commit": True})
    _, event = await receiver.next()
    assert (event["event"], event["image"], event["author"], event["digest"]) == (
        "image_commit",
        image["id"],
        "tester",
        digest,
    )
    storage = await api.ok("GET", "/user/storage")
    assert storage["usedBytes"] == size


async def test_a_quota_refusal_is_an_event(make_client: MakeClient, receiver: Receiver) -> None:
    client = await make_client(quota_bytes=10, webhooks=hooks(receiver, "quota_exceeded"))
    resp = await client.post(
        "/v2/tester/app/blobs/uploads/",
        params={"digest": "sha256:" + hashlib.sha256(b"x" * 64).hexdigest()},
        data=b"x" * 64,
    )
    assert resp.status == 403
    _, event = await receiver.next()
    assert event["event"] == "quota_exceeded"
    assert (event["account"], event["limit"], event["adding"]) == ("tester", 10, 64)


async def test_an_endpoint_that_does_not_answer_holds_no_push(
    make_client: MakeClient, receiver: Receiver
) -> None:
    receiver.hold = asyncio.Event()
    client = await make_client(webhooks=hooks(receiver, "push"))
    await push_image(client, "tester/app", "one", [b"1"])
    await asyncio.wait_for(receiver.held.wait(), PATIENCE)
    # The first delivery is still waiting for its answer; pushes go on regardless.
    await push_image(client, "tester/app", "two", [b"2"])
    await push_blob(client, "tester/app", b"3")
    receiver.hold.set()
    tags = {(await receiver.next())[1]["tag"] for _ in range(2)}
    assert tags == {"one", "two"}


# -- the outbox itself ---------------------------------------------------------------------------

ENDPOINT = Endpoint("ci", "http://127.0.0.1:9/", SECRET, frozenset({"push"}))


@pytest.fixture
async def db(tmp_path: Path, database_settings: dict[str, Any]) -> AsyncIterator[Database]:
    database = open_database(database_settings.get("database"), tmp_path)
    await database.open()
    await database.migrate("storage", MIGRATIONS)
    yield database
    await database.close()


async def test_an_event_exists_only_if_its_transaction_commits(db: Database) -> None:
    outbox = Outbox(db, [ENDPOINT])
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await outbox.record(conn, "push", {"repository": "rolled/back"})
            raise RuntimeError("the push failed after queueing its event")
    async with db.transaction() as conn:
        await outbox.record(conn, "push", {"repository": "kept"})
        await outbox.record(conn, "pull", {"repository": "nobody/asked"})
    claimed = await outbox.claim(10, lease_seconds=60)
    assert [json.loads(d.body)["repository"] for d in claimed] == ["kept"]


async def test_claimed_events_come_back_when_their_process_dies(
    tmp_path: Path, db: Database, database_settings: dict[str, Any]
) -> None:
    await Outbox(db, [ENDPOINT]).record_alone("push", {"repository": "r"})
    assert len(await Outbox(db, [ENDPOINT]).claim(10, lease_seconds=3600)) == 1
    # Another process (a fresh connection, as after kill -9) sees the lease and waits...
    other = open_database(database_settings.get("database"), tmp_path)
    await other.open()
    try:
        assert await Outbox(other, [ENDPOINT]).claim(10, lease_seconds=0) == []
        await other.execute("UPDATE webhook_outbox SET next_attempt_at = 0")  # lease ran out
        again = await Outbox(other, [ENDPOINT]).claim(10, lease_seconds=60)
        assert [json.loads(d.body)["repository"] for d in again] == ["r"]
    finally:
        await other.close()


async def test_the_outbox_is_bounded_and_counts_what_it_drops(db: Database) -> None:
    outbox = Outbox(db, [ENDPOINT], max_rows=3, max_attempts=2)
    for n in range(5):
        await outbox.record_alone("push", {"n": n})
    claimed = await outbox.claim(10, lease_seconds=0)
    assert [json.loads(d.body)["n"] for d in claimed] == [2, 3, 4]
    assert await outbox.failed(claimed[0], "HTTP 500", retry_in=0)  # retried later
    retried = [d for d in await outbox.claim(10, lease_seconds=0) if d.attempts == 1]
    assert not await outbox.failed(retried[0], "HTTP 500", retry_in=0)  # out of attempts
    assert await outbox.stats() == {"pending": 2, "dropped_overflow": 2, "dropped_failed": 1}
