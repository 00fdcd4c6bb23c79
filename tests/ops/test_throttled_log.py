"""A recurring event's log line: the first at once, then one count per interval."""

from __future__ import annotations

import asyncio
import logging

import pytest

from beakerd.throttled_log import Throttled


async def test_a_flood_of_events_is_one_line_then_one_count_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("beakerd.test.throttled")
    throttled = Throttled(logger, "refused a connection from %s", interval=0.2)
    with caplog.at_level(logging.WARNING, logger=logger.name):
        for _ in range(500):
            throttled.note("127.0.0.1")
        assert [r.getMessage() for r in caplog.records] == ["refused a connection from 127.0.0.1"]
        await asyncio.sleep(0.3)
        assert caplog.records[-1].getMessage() == (
            "refused a connection from 127.0.0.1 (499 more times in the last 0.2s)"
        )
        await asyncio.sleep(0.3)  # nothing more happened: nothing more is logged
        assert len(caplog.records) == 2
        throttled.note("127.0.0.2")  # a new burst starts with a line of its own
        assert caplog.records[-1].getMessage() == "refused a connection from 127.0.0.2"
        throttled.cancel()
