"""The registry credentials minted for an image live no longer than what they hang on."""

from __future__ import annotations

import asyncio
import time

from metadata.accounts import issue_token
from registry.context import REGISTRY
from registry.tokens import TOKENS
from tests.metadata.helpers import (
    Api,
    GatedBody,
    basic,
    digest_of,
    push_latest,
    repository_of,
)


async def _push_status(api: Api, repository: str, headers: dict[str, str]) -> int:
    data = b"a layer"
    resp = await api.client.post(
        f"/v2/{repository}/blobs/uploads/",
        params={"digest": digest_of(data)},
        data=data,
        headers=headers,
    )
    return resp.status


async def _bearer_from(api: Api, user: str, password: str, repository: str) -> dict[str, str]:
    resp = await api.client.get(
        "/v2/token",
        params={"scope": f"repository:{repository}:pull,push"},
        headers=basic(user, password),
    )
    assert resp.status == 200, await resp.text()
    return {"Authorization": "Bearer " + (await resp.json())["token"]}


async def test_revoking_the_api_token_stops_the_image_credential_it_minted(api: Api) -> None:
    created = await api.ok("POST", "/user/tokens", json_body={"description": "ci"})
    image = await api.create_image("revocable", token=created["token"])
    repository = repository_of(image)
    user, password = await api.push_credentials(image, created["token"])
    bearer = await _bearer_from(api, user, password, repository)
    assert await _push_status(api, repository, basic(user, password)) == 201

    assert (await api.call("DELETE", f"/user/tokens/{created['id']}")).status == 204
    assert await _push_status(api, repository, basic(user, password)) == 401
    assert await _push_status(api, repository, bearer) == 401
    resp = await api.client.get("/v2/token", headers=basic(user, password))
    assert resp.status == 401


async def test_an_image_credential_never_outlives_the_api_token_that_minted_it(api: Api) -> None:
    _, secret = await issue_token(api.db, "tester", "short", expires=time.time() + 60)
    image = await api.create_image("short-lived", token=secret)
    _, password = await api.push_credentials(image, secret)
    claims = api.client.app[TOKENS].verify(password)
    assert claims.expires <= time.time() + 60
    assert claims.image_id == image["id"]


async def test_deleting_the_image_stops_its_credentials_and_nothing_recreates_it(
    api: Api,
) -> None:
    image = await api.create_image("deleted")
    repository = repository_of(image)
    user, password = await api.push_credentials(image, api.token)
    bearer = await _bearer_from(api, user, password, repository)
    await push_latest(api.client, repository, [b"content"], basic(user, password))

    assert (await api.call("DELETE", f"/images/{image['id']}")).status == 204
    assert await _push_status(api, repository, basic(user, password)) == 401
    assert await _push_status(api, repository, bearer) == 401
    assert not await api.client.app[REGISTRY].repositories.exists(repository)


async def test_a_push_racing_the_delete_cannot_recreate_the_repository(api: Api) -> None:
    """Checked in the transaction that writes: the body was still arriving at the delete."""
    image = await api.create_image("racing-delete")
    repository = repository_of(image)
    user, password = await api.push_credentials(image, api.token)
    gate = GatedBody(b"late ", b"bytes")
    upload = asyncio.create_task(
        api.client.post(
            f"/v2/{repository}/blobs/uploads/",
            params={"digest": digest_of(gate.whole)},
            data=gate.chunks(),
            headers=basic(user, password),
        )
    )
    await gate.first_part_sent.wait()
    assert (await api.call("DELETE", f"/images/{image['id']}")).status == 204
    gate.release.set()
    resp = await upload
    assert resp.status == 404
    assert (await resp.json())["errors"][0]["code"] == "NAME_UNKNOWN"
    assert not await api.client.app[REGISTRY].repositories.exists(repository)


async def test_a_new_image_has_its_repository_before_anything_is_pushed(api: Api) -> None:
    image = await api.create_image("fresh")
    assert await api.client.app[REGISTRY].repositories.exists(repository_of(image))
