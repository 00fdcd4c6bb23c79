"""An account's own API tokens over /api/v3: create, list, use, revoke."""

from __future__ import annotations

from tests.metadata.helpers import Api, basic


async def test_a_new_token_works_until_revoked_on_the_api_and_the_registry(api: Api) -> None:
    created = await api.ok("POST", "/user/tokens", json_body={"description": "laptop"})
    secret, token_id = created["token"], created["id"]
    assert created["description"] == "laptop"
    assert (await api.ok("GET", "/user", secret))["name"] == "tester"
    registry_token = await api.client.get(
        "/v2/token",
        params={"scope": "repository:tester/app:pull,push"},
        headers=basic("tester", secret),
    )
    bearer = {"Authorization": "Bearer " + (await registry_token.json())["token"]}
    assert (await api.client.get("/v2/", headers=bearer)).status == 200

    listed = await api.ok("GET", "/user/tokens")
    assert token_id in {t["id"] for t in listed["data"]}
    assert all("token" not in t for t in listed["data"])

    assert (await api.call("DELETE", f"/user/tokens/{token_id}")).status == 204
    assert (await api.call("GET", "/user", secret)).status == 401
    assert (await api.client.get("/v2/", headers=bearer)).status == 401
    assert (await api.call("DELETE", f"/user/tokens/{token_id}")).status == 404


async def test_nobody_revokes_another_accounts_token(api: Api) -> None:
    _, bob_secret = await api.new_account("bob")
    mine = await api.ok("GET", "/user/tokens")
    resp = await api.call("DELETE", f"/user/tokens/{mine['data'][0]['id']}", bob_secret)
    assert resp.status == 404
    assert (await api.call("GET", "/user")).status == 200


async def test_registry_tokens_never_outlive_an_expiring_api_token(api: Api) -> None:
    import time

    from metadata.accounts import issue_token

    _, secret = await issue_token(api.db, "tester", "short-lived", expires=time.time() + 90)
    resp = await api.client.get(
        "/v2/token",
        params={"scope": "repository:tester/app:pull"},
        headers=basic("tester", secret),
    )
    assert resp.status == 200
    assert 0 < (await resp.json())["expires_in"] <= 90
    _, expired = await issue_token(api.db, "tester", "gone", expires=time.time() - 1)
    resp = await api.client.get("/v2/token", headers=basic("tester", expired))
    assert resp.status == 401
