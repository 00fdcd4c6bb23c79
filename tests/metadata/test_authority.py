"""The registry asks Beaker accounts who is calling /v2 and what they may do where."""

from __future__ import annotations

from metadata.accounts import list_tokens, revoke_token
from metadata.authority import BeakerAuthority
from metadata.organizations import add_member
from registry.auth import Principal
from tests.metadata.helpers import Api, basic, push_latest, repository_of

ALL = {"pull", "push", "delete"}


async def test_authenticate_needs_the_token_of_that_very_account(authed_api: Api) -> None:
    authority = BeakerAuthority(authed_api.db)
    _, alice = await authed_api.new_account("alice")
    principal = await authority.authenticate("tester", authed_api.token)
    assert principal is not None and principal.name == "tester" and principal.admin
    assert principal.grants is None
    assert await authority.authenticate("alice", authed_api.token) is None
    assert await authority.authenticate("tester", alice) is None
    assert await authority.authenticate("tester", "bk_wrong") is None
    assert await authority.authenticate("nobody", "bk_wrong") is None


async def test_a_revoked_token_no_longer_authenticates(authed_api: Api) -> None:
    authority = BeakerAuthority(authed_api.db)
    _, alice = await authed_api.new_account("alice")
    (token,) = await list_tokens(authed_api.db, "alice")
    await revoke_token(authed_api.db, token.id)
    assert await authority.authenticate("alice", alice) is None
    assert not await authority.token_is_live(token.id)


async def test_rights_follow_namespaces_images_and_admin(authed_api: Api) -> None:
    authority = BeakerAuthority(authed_api.db)
    _, alice_token = await authed_api.new_account("alice")
    await authed_api.new_account("bob")
    image = await authed_api.create_image("private")
    repository = repository_of(image)
    alice, bob = Principal("alice"), Principal("bob")

    assert await authority.allowed_actions(None, "alice/x") == set()
    assert await authority.allowed_actions(alice, "alice") == ALL
    assert await authority.allowed_actions(alice, "alice/deep/x") == ALL
    assert await authority.allowed_actions(alice, "alicex/y") == set()
    assert await authority.allowed_actions(alice, "bob/x") == set()
    assert await authority.allowed_actions(Principal("tester", admin=True), "bob/x") == ALL
    # tester's image in tester/default: alice is not in org tester.
    assert await authority.allowed_actions(alice, repository) == set()
    await add_member(authed_api.db, "tester", "alice")
    assert await authority.allowed_actions(alice, repository) == {"pull"}
    assert await authority.allowed_actions(bob, repository) == set()
    # An image's author may pull it but pushes only with the minted credentials.
    own = await authed_api.create_image("own", token=alice_token, workspace="alice/default")
    assert await authority.allowed_actions(alice, repository_of(own)) == {"pull"}
    # A principal whose account is gone has no rights.
    assert await authority.allowed_actions(Principal("ghost"), "ghost/x") == set()


async def test_the_create_push_commit_flow_works_with_minted_credentials(
    authed_api: Api,
) -> None:
    api, client = authed_api, authed_api.client
    _, alice = await api.new_account("alice")
    image = await api.create_image("flow", token=alice, workspace="alice/default")
    repository = repository_of(image)
    creds = (await api.ok("GET", f"/images/{image['id']}/repository?upload=True", alice))["auth"]
    push_auth = basic(creds["user"], creds["password"])

    # Her own API token does not push to the image repository; the minted credential does.
    assert (await client.get("/v2/", headers=basic("alice", alice))).status == 200
    resp = await client.post(f"/v2/{repository}/blobs/uploads/", headers=basic("alice", alice))
    assert resp.status in (401, 403)
    digest, _ = await push_latest(client, repository, [b"alice's layer"], push_auth)
    committed = await api.ok("PATCH", f"/images/{image['id']}", alice, json_body={"commit": True})
    assert committed["digest"] == digest

    # Once committed, even the minted push credential is refused.
    resp = await client.post(f"/v2/{repository}/blobs/uploads/", headers=push_auth)
    assert resp.status == 403

    pull = (await api.ok("GET", f"/images/{image['id']}/repository", alice))["auth"]
    resp = await client.get(
        f"/v2/{repository}/manifests/latest", headers=basic(pull["user"], pull["password"])
    )
    assert resp.status == 200
    assert resp.headers["Docker-Content-Digest"] == digest


async def test_accounts_push_to_their_own_namespace_only(authed_api: Api) -> None:
    _, alice = await authed_api.new_account("alice")
    client = authed_api.client
    await push_latest(client, "alice/tools", [b"tool"], basic("alice", alice))
    resp = await client.post("/v2/bob/tools/blobs/uploads/", headers=basic("alice", alice))
    assert resp.status in (401, 403)
    assert (await client.get("/v2/alice/tools/manifests/latest")).status == 401
