"""Accounts are isolated, against a real `beakerd serve`.

Alice and Bob are ordinary accounts. Alice must not read, push, delete, mount from, or learn
of the existence of Bob's repositories and blobs: every answer she gets about something of
Bob's is byte-for-byte the answer about something that does not exist (names and digests
aside). On /api/v3 she cannot commit, rename or delete Bob's images, and a push credential
minted for one image works on no other repository.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from metadata.accounts import create_account
from storage.sqlite import SqliteDatabase
from tests.server import Server, running_beakerd

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
Auth = tuple[str, str]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_for(config: bytes, layer: bytes) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}],
    }).encode()  # fmt: skip


@dataclass
class World:
    server: Server
    alice: Auth
    bob: Auth
    config: bytes
    layer: bytes
    # Bob's: a namespace repository, a private image (and its registry repository), another
    # image of his, an image in a public workspace, and an upload session he left open.
    bob_repo: str
    private_image: str
    private_repo: str
    other_image: str
    other_repo: str
    public_image: str
    bob_minted: str
    bob_session: str

    def url(self, path: str) -> str:
        return self.server.url + path

    def v2(self, method: str, path: str, auth: Auth | None, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.url(path), auth=auth, timeout=30, **kwargs)

    def api(self, method: str, path: str, auth: Auth, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {auth[1]}", "Content-Type": "application/json"}
        return requests.request(method, self.url("/api/v3" + path), headers=headers, timeout=30,
                                **kwargs)  # fmt: skip


async def _make_accounts(data_dir: Path) -> dict[str, str]:
    db = SqliteDatabase(data_dir / "beakerd.db")
    await db.open()
    try:
        tokens = {}
        for name in ("alice", "bob"):
            _, tokens[name] = await create_account(db, name)
        return tokens
    finally:
        await db.close()


def _push(w: World, repo: str, tag: str, auth: Auth) -> None:
    for blob in (w.config, w.layer):
        resp = w.v2("POST", f"/v2/{repo}/blobs/uploads/?digest={sha256(blob)}", auth, data=blob)
        assert resp.status_code == 201, resp.text
    resp = w.v2("PUT", f"/v2/{repo}/manifests/{tag}", auth, data=manifest_for(w.config, w.layer),
                headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
    assert resp.status_code == 201, resp.text


def _image(w: World, auth: Auth, name: str, workspace: str | None = None) -> tuple[str, str]:
    body = {"workspace": workspace} if workspace else {}
    resp = w.api("POST", f"/images?name={name}", auth, json=body)
    assert resp.status_code == 200, resp.text
    image_id = resp.json()["id"]
    creds = w.api("GET", f"/images/{image_id}/repository?upload=true", auth).json()
    repo = creds["imageTag"].split("/", 1)[1]
    return image_id, repo


def _minted(w: World, image_id: str, auth: Auth, upload: bool = True) -> str:
    query = "?upload=true" if upload else ""
    resp = w.api("GET", f"/images/{image_id}/repository{query}", auth)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["auth"]["password"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_beakerd(tmp_path_factory.mktemp("isolation")) as server:
        # No command makes accounts yet: stop, write them to the database, start again.
        server.stop()
        tokens = asyncio.run(_make_accounts(server.data_dir))
        server.restart()
        alice, bob = ("alice", tokens["alice"]), ("bob", tokens["bob"])
        config = b'{"architecture":"amd64","os":"linux","secret":1}'
        w = World(server, alice, bob, config, b"bob's secret layer" * 64, "bob/private",
                  "", "", "", "", "", "", "")  # fmt: skip
        _push(w, w.bob_repo, "v1", bob)
        w.private_image, w.private_repo = _image(w, bob, "secret")
        w.bob_minted = _minted(w, w.private_image, bob)
        _push(w, w.private_repo, "latest", ("bob", w.bob_minted))
        w.other_image, w.other_repo = _image(w, bob, "other")
        resp = w.api("POST", "/workspaces", bob, json={"name": "open", "public": True})
        assert resp.status_code == 200, resp.text
        w.public_image, _ = _image(w, bob, "visible", workspace="bob/open")
        resp = w.v2("POST", f"/v2/{w.bob_repo}/blobs/uploads/", bob)
        w.bob_session = resp.headers["Location"].rsplit("/", 1)[1]
        yield w


def _answer(resp: requests.Response, *secrets: str) -> tuple[int, str]:
    """Status and body, with the names and digests asked about blanked out."""
    body = resp.text
    for secret in secrets:
        body = body.replace(secret, "<X>")
    return resp.status_code, body


def _bearer(w: World, auth: Auth, *scopes: str) -> Auth:
    """A registry token by Docker's token flow, used as `Authorization: Bearer`."""
    resp = requests.get(w.url("/v2/token"), params=[("service", "beakerd"),
                        *(("scope", s) for s in scopes)], auth=auth, timeout=30)  # fmt: skip
    assert resp.status_code == 200, resp.text
    return ("bearer", str(resp.json()["token"]))


def _send(w: World, method: str, path: str, auth: Auth, **kwargs: Any) -> requests.Response:
    if auth[0] == "bearer":
        headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {auth[1]}"}
        return w.v2(method, path, None, headers=headers, **kwargs)
    return w.v2(method, path, auth, **kwargs)


ABSENT_REPO = "bob/absent"
ABSENT_DIGEST = sha256(b"nothing like this was ever pushed")


def _probes(repo: str, digest: str, session: str) -> list[tuple[str, str, dict[str, Any]]]:
    body = manifest_for(b"{}", b"x")
    return [
        ("GET", f"/v2/{repo}/manifests/v1", {}),
        ("HEAD", f"/v2/{repo}/manifests/v1", {}),
        ("GET", f"/v2/{repo}/manifests/latest", {}),
        ("GET", f"/v2/{repo}/tags/list", {}),
        ("GET", f"/v2/{repo}/blobs/{digest}", {}),
        ("HEAD", f"/v2/{repo}/blobs/{digest}", {}),
        ("GET", f"/v2/{repo}/referrers/{digest}", {}),
        ("POST", f"/v2/{repo}/blobs/uploads/", {}),
        ("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", {"data": b"x"}),
        ("GET", f"/v2/{repo}/blobs/uploads/{session}", {}),
        ("PATCH", f"/v2/{repo}/blobs/uploads/{session}", {"data": b"x"}),
        ("PUT", f"/v2/{repo}/blobs/uploads/{session}?digest={digest}", {}),
        ("DELETE", f"/v2/{repo}/blobs/uploads/{session}", {}),
        ("PUT", f"/v2/{repo}/manifests/v2", {"data": body,
                                             "headers": {"Content-Type": OCI_MANIFEST}}),
        ("DELETE", f"/v2/{repo}/manifests/v1", {}),
        ("DELETE", f"/v2/{repo}/blobs/{digest}", {}),
    ]  # fmt: skip


@pytest.mark.parametrize("flow", ["basic", "bearer"])
@pytest.mark.parametrize("target", ["namespace", "image"])
def test_bobs_repositories_answer_alice_exactly_like_absent_ones(
    world: World, flow: str, target: str
) -> None:
    w = world
    repo = w.bob_repo if target == "namespace" else w.private_repo
    # An image's repository is one random segment; an absent one of the same shape.
    absent = ABSENT_REPO if target == "namespace" else "z" + "0" * (len(w.private_repo) - 1)
    fake_session = str(uuid.uuid4())
    scopes = [f"repository:{r}:pull,push,delete" for r in (repo, absent)]
    auth = w.alice if flow == "basic" else _bearer(w, w.alice, *scopes)
    seen = _probes(repo, sha256(w.layer), w.bob_session)
    unseen = _probes(absent, ABSENT_DIGEST, fake_session)
    for (method, path, kwargs), (_, other_path, other_kwargs) in zip(seen, unseen, strict=True):
        secrets = (repo, absent, sha256(w.layer), ABSENT_DIGEST, w.bob_session, fake_session)
        mine = _answer(_send(w, method, path, auth, **kwargs), *secrets)
        theirs = _answer(_send(w, method, other_path, auth, **other_kwargs), *secrets)
        assert mine == theirs, (method, path)
        assert mine[0] in {401, 403}, (method, path, mine)
    # Bob's content is all still there, and his session still open.
    assert w.v2("GET", f"/v2/{w.bob_repo}/manifests/v1", w.bob).status_code == 200
    assert w.v2("GET", f"/v2/{w.bob_repo}/blobs/{sha256(w.layer)}", w.bob).content == w.layer
    assert w.v2("GET", f"/v2/{w.bob_repo}/blobs/uploads/{w.bob_session}", w.bob).status_code == 204


def test_alice_cannot_mount_or_reference_bobs_blobs_nor_tell_they_exist(world: World) -> None:
    w = world
    secret, absent = sha256(w.layer), ABSENT_DIGEST
    answers: dict[str, list[tuple[int, str]]] = {secret: [], absent: []}
    for digest in (secret, absent):
        probes: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", f"/v2/alice/app/blobs/uploads/?mount={digest}&from={w.bob_repo}", {}),
            ("POST", f"/v2/alice/app/blobs/uploads/?mount={digest}&from={w.private_repo}", {}),
            ("POST", f"/v2/alice/app/blobs/uploads/?mount={digest}", {}),
            ("HEAD", f"/v2/alice/app/blobs/{digest}", {}),
            ("GET", f"/v2/alice/app/blobs/{digest}", {}),
        ]
        for method, path, kwargs in probes:
            resp = w.v2(method, path, w.alice, **kwargs)
            # A refused mount starts an ordinary upload session, as for an unknown blob.
            answers[digest].append(_answer(resp, secret, absent, *_session_ids(resp)))
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest, "size": len(w.layer)},
            "layers": [],
        }).encode()  # fmt: skip
        resp = w.v2("PUT", "/v2/alice/app/manifests/v1", w.alice, data=manifest,
                    headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
        answers[digest].append(_answer(resp, secret, absent))
    assert answers[secret] == answers[absent]
    statuses = [status for status, _ in answers[secret]]
    assert statuses == [202, 202, 202, 404, 404, 400]


def _session_ids(resp: requests.Response) -> list[str]:
    found = resp.headers.get("Docker-Upload-UUID")
    return [found] if found else []


def test_catalog_lists_only_alices_own_repositories(world: World) -> None:
    w = world
    _push(w, "alice/mine", "v1", w.alice)
    auth = _bearer(w, w.alice, "registry:catalog:*")
    resp = _send(w, "GET", "/v2/_catalog", auth)
    assert resp.status_code == 200
    assert resp.json()["repositories"] == ["alice/mine"]
    resp = w.v2("GET", "/v2/_catalog", w.alice)
    assert resp.json()["repositories"] == ["alice/mine"]


def test_token_endpoint_grants_alice_nothing_on_bobs_repositories(world: World) -> None:
    w = world
    _, token = _bearer(w, w.alice, f"repository:{w.bob_repo}:pull,push,delete,*",
                       f"repository:{w.private_repo}:*")  # fmt: skip
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == "alice"
    assert claims["access"] == []


def test_alice_cannot_see_commit_rename_or_delete_bobs_private_image(world: World) -> None:
    w = world
    absent = "01" + "0" * 24
    for ref in (w.private_image, "bob/secret"):
        answers = []
        for probe_ref in (ref, absent if "/" not in ref else "bob/absent"):
            got = []
            for method, path, body in [
                ("GET", f"/images/{probe_ref}", None),
                ("PATCH", f"/images/{probe_ref}", {"commit": True}),
                ("PATCH", f"/images/{probe_ref}", {"name": "stolen"}),
                ("GET", f"/images/{probe_ref}/repository", None),
                ("GET", f"/images/{probe_ref}/repository?upload=true", None),
                ("DELETE", f"/images/{probe_ref}", None),
            ]:
                resp = w.api(method, path.replace("%2F", "/"), w.alice, json=body)
                got.append(_answer(resp, ref, probe_ref))
            answers.append(got)
        assert answers[0] == answers[1]
        assert {status for status, _ in answers[0]} == {404}
    # Untouched: still Bob's, still named, not committed.
    image = w.api("GET", f"/images/{w.private_image}", w.bob).json()
    assert image["name"] == "secret" and "committed" not in image
    assert w.api("GET", "/workspaces/bob%2Fdefault/images", w.alice).status_code == 404


def test_alice_may_read_bobs_public_image_but_not_change_it(world: World) -> None:
    w = world
    ref = w.public_image
    assert w.api("GET", f"/images/{ref}", w.alice).status_code == 200
    assert w.api("GET", f"/images/{ref}/repository", w.alice).status_code == 200
    for method, path, body in [
        ("PATCH", f"/images/{ref}", {"commit": True}),
        ("PATCH", f"/images/{ref}", {"name": "stolen"}),
        ("GET", f"/images/{ref}/repository?upload=true", None),
        ("DELETE", f"/images/{ref}", None),
    ]:
        resp = w.api(method, path, w.alice, json=body)
        assert resp.status_code == 403, (method, path, resp.text)
        assert resp.json()["code"] == 403
    assert w.api("GET", f"/images/{ref}", w.bob).json()["name"] == "visible"


def test_push_credentials_minted_for_one_image_work_on_no_other_repository(world: World) -> None:
    w = world
    minted = ("bob", w.bob_minted)
    for repo in (w.other_repo, w.bob_repo, "alice/mine", "image/elsewhere"):
        resp = w.v2("POST", f"/v2/{repo}/blobs/uploads/", minted)
        assert resp.status_code == 403, (repo, resp.status_code, resp.text)
        assert w.v2("GET", f"/v2/{repo}/tags/list", minted).status_code == 403
        # Through the token flow too: the token it yields grants nothing there (the answer is
        # Docker's 401 insufficient_scope, which clients report at once).
        auth = _bearer(w, minted, f"repository:{repo}:pull,push")
        resp = _send(w, "POST", f"/v2/{repo}/blobs/uploads/", auth)
        assert resp.status_code == 401
        assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]
    # Its own repository it may push (the image is not committed yet).
    assert w.v2("POST", f"/v2/{w.private_repo}/blobs/uploads/", minted).status_code == 202
    # Someone else presenting it, or a pull-only credential pushing, is refused.
    assert (
        w.v2("GET", f"/v2/{w.private_repo}/tags/list", ("alice", w.bob_minted)).status_code == 401
    )
    pull_only = ("bob", _minted(w, w.other_image, w.bob, upload=False))
    assert w.v2("POST", f"/v2/{w.other_repo}/blobs/uploads/", pull_only).status_code in {401, 403}


def test_bobs_upload_session_is_unknown_under_alices_own_repository(world: World) -> None:
    w = world
    fake = str(uuid.uuid4())
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        answers = []
        for session in (w.bob_session, fake):
            path = f"/v2/alice/mine/blobs/uploads/{session}"
            query = f"?digest={ABSENT_DIGEST}" if method == "PUT" else ""
            resp = w.v2(method, path + query, w.alice, data=b"x" if method != "GET" else None)
            answers.append(_answer(resp, w.bob_session, fake))
        assert answers[0] == answers[1]
        assert answers[0][0] == 404 and "BLOB_UPLOAD_UNKNOWN" in answers[0][1]
    assert w.v2("GET", f"/v2/{w.bob_repo}/blobs/uploads/{w.bob_session}", w.bob).status_code == 204
