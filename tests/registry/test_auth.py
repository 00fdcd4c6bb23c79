"""Docker's token flow and who may do what, with a stand-in for the account store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from beakerd.app import create_app
from beakerd.settings import Settings
from registry.auth import AUTHORITY, Principal
from registry.context import REGISTRY
from registry.tokens import TOKENS, Grant
from storage.repositories import create_repository
from tests.backends.backend import Backend
from tests.registry.helpers import OCI_MANIFEST, basic, digest_of, error_code

TOKENS_BY_ACCOUNT = {"alice": "alice-secret", "bob": "bob-secret", "root": "root-secret"}


class StaticAuthority:
    """Accounts own their namespace; `root` is an admin. Each API token's id is its account."""

    def __init__(self) -> None:
        self.revoked: set[str] = set()

    async def authenticate(self, username: str, secret: str) -> Principal | None:
        if TOKENS_BY_ACCOUNT.get(username) != secret:
            return None
        return Principal(username, admin=username == "root", token_id=username)

    async def token_is_live(self, token_id: str) -> bool:
        return token_id not in self.revoked

    async def image_is_live(self, image_id: str) -> bool:
        return True

    async def namespace_exists(self, repository: str) -> bool:
        return repository.split("/")[0] in TOKENS_BY_ACCOUNT

    async def readable_repositories(
        self, principal: Principal | None, repositories: list[str]
    ) -> frozenset[str]:
        readable = set()
        for repository in repositories:
            if "pull" in await self.allowed_actions(principal, repository):
                readable.add(repository)
        return frozenset(readable)

    async def allowed_actions(self, principal: Principal | None, repository: str) -> frozenset[str]:
        if principal is None:
            return frozenset()
        if principal.admin or repository.split("/")[0] == principal.name:
            return frozenset({"pull", "push", "delete"})
        return frozenset()


async def _client(tmp_path: Path, **settings: Any) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(Settings(data_dir=tmp_path / "data", **settings))
    app[AUTHORITY] = StaticAuthority()
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.fixture
async def client(tmp_path: Path, backend: Backend) -> AsyncIterator[TestClient[Any, Any]]:
    async for c in _client(tmp_path, **backend.settings()):
        yield c


async def token_for(client: TestClient[Any, Any], user: str, *scopes: str) -> str:
    resp = await client.get(
        "/v2/token",
        params=[("service", "beakerd"), *(("scope", s) for s in scopes)],
        headers=basic(user, TOKENS_BY_ACCOUNT[user]),
    )
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def push(client: TestClient[Any, Any], name: str, headers: dict[str, str]) -> int:
    data = b"layer of " + name.encode()
    resp = await client.post(
        f"/v2/{name}/blobs/uploads/", params={"digest": digest_of(data)}, data=data, headers=headers
    )
    return resp.status


async def test_anonymous_requests_are_challenged_with_the_token_realm(client: Any) -> None:
    resp = await client.get("/v2/")
    assert resp.status == 401
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer realm="http://{client.host}:{client.port}/v2/token"')
    assert 'service="beakerd"' in challenge
    resp = await client.get("/v2/alice/app/manifests/latest")
    assert resp.status == 401
    assert 'scope="repository:alice/app:pull"' in resp.headers["WWW-Authenticate"]
    assert await error_code(resp) == "UNAUTHORIZED"


async def test_token_flow_lets_an_account_push_its_namespace(client: Any) -> None:
    token = await token_for(client, "alice", "repository:alice/app:pull,push")
    assert await push(client, "alice/app", bearer(token)) == 201
    assert (await client.get("/v2/", headers=bearer(token))).status == 200


async def test_wrong_token_or_password_is_refused(client: Any) -> None:
    resp = await client.get("/v2/token", headers=basic("alice", "wrong"))
    assert resp.status == 401
    resp = await client.get("/v2/", headers=bearer("not.a.jwt"))
    assert resp.status == 401
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


async def test_other_namespaces_are_denied_alike_whether_they_exist_or_not(client: Any) -> None:
    bob = await token_for(client, "bob", "repository:bob/secret:pull,push")
    assert await push(client, "bob/secret", bearer(bob)) == 201
    alice = await token_for(
        client, "alice", "repository:bob/secret:pull,push", "repository:bob/absent:pull,push"
    )
    answers = []
    for name in ("bob/secret", "bob/absent"):
        for method, path in (
            ("GET", "tags/list"),
            ("GET", "manifests/latest"),
            ("POST", "blobs/uploads/"),
        ):
            resp = await client.request(method, f"/v2/{name}/{path}", headers=bearer(alice))
            challenge = resp.headers["WWW-Authenticate"].replace(name, "NAME")
            answers.append((resp.status, challenge, (await resp.text()).replace(name, "NAME")))
    # Docker's token spec: 401 insufficient_scope, which clients report at once (a 403 has
    # docker retry a push for a minute), in the same words whether the repository exists.
    assert {status for status, _, _ in answers} == {401}
    assert all('error="insufficient_scope"' in challenge for _, challenge, _ in answers)
    assert "alice may not" in answers[2][2]
    assert answers[:3] == answers[3:]


async def test_scope_wider_than_the_token_asks_for_a_new_token(client: Any) -> None:
    token = await token_for(client, "alice", "repository:alice/app:pull")
    resp = await client.post("/v2/alice/app/blobs/uploads/", headers=bearer(token))
    assert resp.status == 401
    assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]
    assert 'scope="repository:alice/app:pull,push"' in resp.headers["WWW-Authenticate"]


async def _make_repository(client: Any, name: str) -> None:
    """An image's repository, as creating the image makes it (pushes never create one)."""
    async with client.app[REGISTRY].repositories.db.transaction() as conn:
        await create_repository(conn, name)


async def test_minted_credential_pushes_only_its_repository(client: Any) -> None:
    await _make_repository(client, "image/repo1")
    minted = client.app[TOKENS].issue(
        "alice", [Grant("image/repo1", frozenset({"pull", "push"}))], 600
    )
    resp = await client.get(
        "/v2/token",
        params={"scope": ["repository:image/repo1:pull,push"]},
        headers=basic("alice", minted),
    )
    assert resp.status == 200
    own = (await resp.json())["token"]
    assert await push(client, "image/repo1", bearer(own)) == 201
    # Even the account's own namespace is out of reach with this credential.
    resp = await client.get(
        "/v2/token",
        params=[
            ("scope", "repository:image/repo2:pull,push"),
            ("scope", "repository:alice/x:push"),
        ],
        headers=basic("alice", minted),
    )
    other = (await resp.json())["token"]
    assert await push(client, "image/repo2", bearer(other)) == 401
    assert await push(client, "alice/x", bearer(other)) == 401
    assert await push(client, "image/repo2", basic("alice", minted)) == 403


async def _exchange(client: Any, token: str, *scopes: str) -> dict[str, Any]:
    """Renew a registry token with itself as the bearer, as docker does on a 401."""
    resp = await client.get(
        "/v2/token",
        params=[("service", "beakerd"), *(("scope", s) for s in scopes)],
        headers=bearer(token),
    )
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def _claims(client: Any, token: str) -> Any:
    return client.app[TOKENS].verify(token)


async def test_renewing_with_a_registry_token_never_widens_its_scope(client: Any) -> None:
    narrow = await token_for(client, "alice", "repository:alice/app:pull")
    renewed = await _exchange(
        client,
        narrow,
        "repository:alice/app:pull,push",
        "repository:alice/other:pull,push,delete",
        "registry:catalog:*",
    )
    claims = _claims(client, renewed["token"])
    assert [(g.repository, g.actions) for g in claims.grants] == [
        ("alice/app", frozenset({"pull"}))
    ]
    assert not claims.catalog
    assert claims.expires <= _claims(client, narrow).expires
    # The renewed token is narrowed for good: renewing it again gives no more either.
    again = await _exchange(client, renewed["token"], "repository:alice/app:pull,push")
    assert [g.actions for g in _claims(client, again["token"]).grants] == [frozenset({"pull"})]
    assert await push(client, "alice/app", bearer(again["token"])) == 401


async def test_a_renewed_token_keeps_its_api_token_and_dies_with_it(client: Any) -> None:
    first = await token_for(client, "alice", "repository:alice/app:pull,push")
    renewed = (await _exchange(client, first, "repository:alice/app:pull,push"))["token"]
    assert _claims(client, renewed).token_id == "alice"
    assert await push(client, "alice/app", bearer(renewed)) == 201
    client.app[AUTHORITY].revoked.add("alice")
    await client.app[REGISTRY].changed()
    resp = await client.get("/v2/alice/app/tags/list", headers=bearer(renewed))
    assert resp.status == 401
    resp = await client.get("/v2/token", headers=bearer(renewed))
    assert resp.status == 401


async def test_a_minted_credential_renewed_stays_within_its_image_repository(client: Any) -> None:
    await _make_repository(client, "image/repo1")
    grant = Grant("image/repo1", frozenset({"pull", "push"}))
    minted = client.app[TOKENS].issue("alice", [grant], 600, limit=[grant], token_id="alice")
    resp = await client.get(
        "/v2/token",
        params={"scope": "repository:image/repo1:pull,push"},
        headers=basic("alice", minted),
    )
    first = (await resp.json())["token"]
    # Renewed with the bearer it got, asking for the account's whole namespace.
    renewed = await _exchange(
        client, first, "repository:alice/x:pull,push", "repository:image/repo1:pull,push"
    )
    claims = _claims(client, renewed["token"])
    assert [g.repository for g in claims.grants] == ["image/repo1"]
    assert claims.expires <= _claims(client, minted).expires
    assert await push(client, "alice/x", bearer(renewed["token"])) == 401


async def test_a_minted_credential_never_creates_a_repository(client: Any) -> None:
    grant = Grant("gone/repo", frozenset({"pull", "push"}))
    minted = client.app[TOKENS].issue("alice", [grant], 600, limit=[grant], image_id="bp_gone")
    resp = await client.post(
        "/v2/gone/repo/blobs/uploads/",
        params={"digest": digest_of(b"x")},
        data=b"x",
        headers=basic("alice", minted),
    )
    assert resp.status == 404
    assert await error_code(resp) == "NAME_UNKNOWN"
    assert not await client.app[REGISTRY].repositories.exists("gone/repo")


async def test_an_admin_push_outside_every_namespace_is_refused(client: Any) -> None:
    resp = await client.post(
        "/v2/nobody/app/blobs/uploads/",
        params={"digest": digest_of(b"x")},
        data=b"x",
        headers=basic("root", TOKENS_BY_ACCOUNT["root"]),
    )
    assert resp.status == 404
    assert await error_code(resp) == "NAME_UNKNOWN"
    assert not await client.app[REGISTRY].repositories.exists("nobody/app")
    assert await push(client, "bob/app", basic("root", TOKENS_BY_ACCOUNT["root"])) == 201


async def test_the_token_realm_comes_from_the_public_address_not_the_host_header(
    tmp_path: Path,
) -> None:
    async for client in _client(tmp_path, public_address="registry.example:443"):
        resp = await client.get("/v2/", headers={"Host": "evil.example"})
        assert resp.status == 401
        assert 'realm="http://registry.example:443/v2/token"' in resp.headers["WWW-Authenticate"]


async def test_without_a_public_address_the_realm_is_the_address_connected_to(
    client: Any,
) -> None:
    resp = await client.get("/v2/", headers={"Host": "evil.example"})
    challenge = resp.headers["WWW-Authenticate"]
    assert "evil.example" not in challenge
    assert f'realm="http://127.0.0.1:{client.port}/v2/token"' in challenge


async def test_catalog_lists_only_readable_repositories(client: Any) -> None:
    for user in ("alice", "bob"):
        token = await token_for(client, user, f"repository:{user}/app:pull,push")
        config = b"{}"
        await client.post(
            f"/v2/{user}/app/blobs/uploads/",
            params={"digest": digest_of(config)},
            data=config,
            headers=bearer(token),
        )
        manifest = (
            f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"a/b","digest":"{digest_of(config)}",'
            '"size":2},"layers":[]}'
        )
        resp = await client.put(
            f"/v2/{user}/app/manifests/v1",
            data=manifest,
            headers={**bearer(token), "Content-Type": OCI_MANIFEST},
        )
        assert resp.status == 201
    without_scope = await token_for(client, "alice")
    resp = await client.get("/v2/_catalog", headers=bearer(without_scope))
    assert resp.status == 401
    assert 'scope="registry:catalog:*"' in resp.headers["WWW-Authenticate"]
    alice = await token_for(client, "alice", "registry:catalog:*")
    resp = await client.get("/v2/_catalog", headers=bearer(alice))
    assert (await resp.json())["repositories"] == ["alice/app"]
    root = await token_for(client, "root", "registry:catalog:*")
    resp = await client.get("/v2/_catalog", headers=bearer(root))
    assert (await resp.json())["repositories"] == ["alice/app", "bob/app"]


async def test_anonymous_pull_setting_allows_reads_only(tmp_path: Path) -> None:
    async for client in _client(tmp_path, anonymous_pull=True):
        resp = await client.get("/v2/token", params={"scope": "repository:alice/app:pull,push"})
        assert resp.status == 200
        token = (await resp.json())["token"]
        resp = await client.get("/v2/alice/app/tags/list", headers=bearer(token))
        assert resp.status == 404  # readable, just not there
        assert await push(client, "alice/app", bearer(token)) == 401


async def test_basic_credentials_work_directly(client: Any) -> None:
    assert await push(client, "alice/direct", basic("alice", "alice-secret")) == 201
    assert await push(client, "bob/direct", basic("alice", "alice-secret")) == 403


async def test_revoking_the_api_token_stops_its_registry_tokens_at_once(client: Any) -> None:
    token = await token_for(client, "alice", "repository:alice/app:pull,push")
    assert (await client.get("/v2/", headers=bearer(token))).status == 200
    client.app[AUTHORITY].revoked.add("alice")
    await client.app[REGISTRY].changed()  # what revoking does, through the metadata store
    resp = await client.get("/v2/", headers=bearer(token))
    assert resp.status == 401
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert (await client.get("/v2/token", headers=basic("alice", "alice-secret"))).status == 401
