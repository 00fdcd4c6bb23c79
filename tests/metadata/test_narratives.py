"""Narratives: at most MAX_NARRATIVE_BYTES (the 400 says so), and rendered off the event loop,
so a hostile one (200,000 `[`, seconds of markdown-it) stalls no other request."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import aiohttp
import pytest

from metadata.narratives import MAX_NARRATIVE_BYTES
from storage.database import Database
from tests.metadata.helpers import Api
from tests.metadata.web_helpers import Browser

HOSTILE = "[" * 200_000
# A stall without the fix lasts many seconds; a loaded 2-core machine answers well within this.
PROMPT_SECONDS = 1.0


async def test_a_narrative_over_the_limit_is_refused_with_the_limit_in_the_message(
    api: Api,
) -> None:
    too_long = "é" * (MAX_NARRATIVE_BYTES // 2 + 1)  # two bytes each: the limit is in bytes
    expected = (
        f"narrative is {MAX_NARRATIVE_BYTES + 2} bytes; the limit is {MAX_NARRATIVE_BYTES} bytes"
    )
    resp = await api.call(
        "POST",
        "/images?name=long",
        json_body={"workspace": "tester/default", "narrative": too_long},
    )
    assert resp.status == 400
    assert (await resp.json())["message"] == expected
    image = await api.create_image("short", narrative="fine")
    resp = await api.call("PATCH", f"/images/{image['id']}", json_body={"narrative": too_long})
    assert resp.status == 400
    assert (await resp.json())["message"] == expected
    assert (await api.ok("GET", f"/images/{image['id']}"))["narrative"] == "fine"


async def test_a_narrative_at_the_limit_is_taken(api: Api) -> None:
    image = await api.create_image("full", narrative="a" * MAX_NARRATIVE_BYTES)
    assert len(image["narrative"]) == MAX_NARRATIVE_BYTES


async def _slowest_health_check(url: str, busy: asyncio.Task[Any]) -> tuple[float, int]:
    """Ask /healthz, from a client of its own, until `busy` is done: the slowest answer's time."""
    slowest, answers = 0.0, 0
    async with aiohttp.ClientSession() as other:
        while not busy.done():
            start = time.monotonic()
            async with other.get(url) as resp:
                assert resp.status == 200
            slowest = max(slowest, time.monotonic() - start)
            answers += 1
            await asyncio.sleep(0.05)
    return slowest, answers


async def _while_checking_health(api: Api, work: Any) -> Any:
    busy = asyncio.ensure_future(work)
    slowest, answers = await _slowest_health_check(str(api.client.make_url("/healthz")), busy)
    assert answers >= 3, "the work ended before it could stall anything"
    assert slowest < PROMPT_SECONDS, f"/healthz took {slowest:.1f} s while a narrative rendered"
    return await busy


async def _page(api: Api, image_id: str) -> str:
    """The image's page, as its author sees it (signed in: the image is private)."""
    jar = api.client.session.cookie_jar
    if not any(cookie.key == "beakerd_session" for cookie in jar):
        await Browser(api.client).sign_in(api.token)
    resp = await api.client.get(f"/im/{image_id}")
    assert resp.status == 200
    return await resp.text()


async def test_writing_and_showing_a_hostile_narrative_stalls_no_other_request(
    api: Api,
) -> None:
    image = await api.create_image("hostile")
    patched = await _while_checking_health(
        api, api.ok("PATCH", f"/images/{image['id']}", json_body={"narrative": HOSTILE})
    )
    assert patched["narrative"] == HOSTILE
    # Rendered when written: the page serves the stored HTML, at once.
    start = time.monotonic()
    page = await _page(api, image["id"])
    assert time.monotonic() - start < PROMPT_SECONDS
    assert "<p>" + HOSTILE + "</p>" in page


async def test_a_narrative_from_before_stored_html_is_rendered_off_the_loop_once(
    api: Api,
) -> None:
    image = await api.create_image("old")
    # As a row from before the migration that added the column: a narrative, no HTML yet.
    await api.db.execute(
        "UPDATE images SET narrative = ?, narrative_html = NULL WHERE id = ?",
        (HOSTILE, image["id"]),
    )
    pages = await _while_checking_health(
        api, asyncio.gather(*(_page(api, image["id"]) for _ in range(3)))
    )
    assert all("<p>" + HOSTILE + "</p>" in page for page in pages)
    row = await api.db.fetchone("SELECT narrative_html FROM images WHERE id = ?", (image["id"],))
    assert row is not None and row["narrative_html"] == "<p>" + HOSTILE + "</p>\n"


async def test_a_page_is_shown_even_when_its_rendered_narrative_cannot_be_stored(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = await api.create_image("unstored")
    await api.db.execute(
        "UPDATE images SET narrative = '*old*', narrative_html = NULL WHERE id = ?",
        (image["id"],),
    )
    execute = Database.execute

    async def full_disk(self: Database, sql: str, params: Any = ()) -> int:
        if "narrative_html" in sql:
            raise sqlite3.OperationalError("database or disk is full")
        return await execute(self, sql, params)

    monkeypatch.setattr(Database, "execute", full_disk)
    assert "<em>old</em>" in await _page(api, image["id"])
