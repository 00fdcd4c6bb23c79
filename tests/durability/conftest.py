from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

# Many concurrent requests at one server: lift aiohttp's per-host connection cap.
_CONNECTOR_LIMIT = 200


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=_CONNECTOR_LIMIT, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        yield session
