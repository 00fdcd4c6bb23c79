"""/api/v3 bodies: a compressed body is inflated, but stays capped once inflated (a gzip bomb
is refused with 413 without eating memory), and an undecodable one is a JSON 400."""

from __future__ import annotations

import gzip
import json
import resource

from tests.metadata.helpers import Api
from tests.registry.bombs import CORRUPT_GZIP, gzip_bomb


def _gzip_headers(api: Api) -> dict[str, str]:
    return {**api.headers(), "Content-Encoding": "gzip"}


async def test_a_small_gzip_body_is_inflated_and_taken(api: Api) -> None:
    body = gzip.compress(json.dumps({"description": "compressed"}).encode())
    resp = await api.client.post("/api/v3/user/tokens", data=body, headers=_gzip_headers(api))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["description"] == "compressed"


async def test_a_gzip_bomb_body_is_refused_with_413_once_past_the_cap(api: Api) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    resp = await api.client.post("/api/v3/images", data=gzip_bomb(), headers=_gzip_headers(api))
    assert resp.status == 413, await resp.text()
    body = await resp.json()
    assert body["code"] == 413 and "exceeds" in body["message"]
    assert resp.headers["Connection"] == "close"
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 256 << 10


async def test_an_undecodable_gzip_body_is_a_json_400(api: Api) -> None:
    resp = await api.client.post(
        "/api/v3/user/tokens", data=CORRUPT_GZIP, headers=_gzip_headers(api)
    )
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    assert body["code"] == 400 and "malformed" in body["message"]
