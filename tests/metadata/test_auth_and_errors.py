"""Every /api/v3 request needs an API token; every error is `{"code", "message"}`."""

from __future__ import annotations

from metadata.accounts import create_token, list_tokens, revoke_token
from tests.metadata.helpers import Api


async def test_a_request_without_a_token_is_refused_with_401_and_a_message(api: Api) -> None:
    resp = await api.client.get("/api/v3/user")
    assert resp.status == 401
    body = await resp.json()
    assert body["code"] == 401 and body["message"]


async def test_a_wrong_token_is_refused_with_401(api: Api) -> None:
    resp = await api.call("GET", "/user", token="bk_not-a-real-token")
    assert resp.status == 401
    assert (await resp.json())["message"]


async def test_a_revoked_token_stops_working_and_others_keep_working(api: Api) -> None:
    extra = await create_token(api.db, "tester", "laptop")
    assert (await api.ok("GET", "/user", token=extra))["name"] == "tester"
    tokens = await list_tokens(api.db, "tester")
    laptop = next(t for t in tokens if t.description == "laptop")
    assert await revoke_token(api.db, laptop.id)
    assert not await revoke_token(api.db, laptop.id)
    assert (await api.call("GET", "/user", token=extra)).status == 401
    assert (await api.call("GET", "/user")).status == 200


async def test_an_expired_token_is_refused(api: Api) -> None:
    expired = await create_token(api.db, "tester", "old", expires=1.0)
    assert (await api.call("GET", "/user", token=expired)).status == 401


async def test_an_unknown_endpoint_answers_a_json_404(api: Api) -> None:
    resp = await api.call("GET", "/datasets/nope")
    assert resp.status == 404
    body = await resp.json()
    assert body == {"code": 404, "message": body["message"]} and body["message"]


async def test_a_wrong_method_answers_a_json_405(api: Api) -> None:
    resp = await api.call("PUT", "/user")
    assert resp.status == 405
    assert (await resp.json())["message"]


async def test_a_malformed_body_answers_400_with_a_message(api: Api) -> None:
    resp = await api.client.post(
        "/api/v3/images", params={"name": "x"}, data=b"{not json", headers=api.headers()
    )
    assert resp.status == 400
    assert "JSON" in (await resp.json())["message"]


async def test_tokens_are_stored_hashed(api: Api) -> None:
    rows = await api.db.fetchall("SELECT secret_sha256 FROM api_tokens")
    assert rows and all(api.token not in row[0] for row in rows)
