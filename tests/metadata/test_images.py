"""The image lifecycle over /api/v3, with pushes through /v2 as the admin."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from metadata.organizations import add_member
from registry.tokens import TOKENS
from tests.metadata.helpers import (
    Api,
    GatedBody,
    basic,
    digest_of,
    manifest_bytes,
    push_latest,
    put_manifest,
    repository_of,
)
from tests.registry.helpers import OCI_MANIFEST

ZERO_ID = "sha256:" + "0" * 64


async def test_create_returns_a_full_image_with_a_fresh_id_and_repository(api: Api) -> None:
    image = await api.create_image("hello", description="greets")
    assert re.fullmatch(r"bp_[a-z0-9]{12}", image["id"])
    assert image["name"] == "hello" and image["fullName"] == "tester/hello"
    assert image["owner"]["name"] == image["author"]["name"] == "tester"
    assert image["workspaceRef"]["fullName"] == "tester/default"
    assert image["originalTag"] == "hello"
    assert image["description"] == "greets"
    assert "committed" not in image
    host, repository = image["dockerTag"].split("/")
    assert host == "127.0.0.1:5000"
    assert re.fullmatch(r"[a-z0-9]{20}", repository)


@pytest.mark.parametrize("key", ["imageID", "imageId", "ImageID", "image_id"])
async def test_create_accepts_the_image_id_key_in_any_case_and_explicit_nulls(
    api: Api, key: str
) -> None:
    body: dict[str, Any] = {
        "workspace": "tester/default", key: ZERO_ID, "imageTag": "local:tag",
        "description": None, "budget": None,
    }  # fmt: skip
    resp = await api.call("POST", "/images", params={"name": f"n-{key}"}, json_body=body)
    assert resp.status == 200, await resp.text()
    image = await resp.json()
    assert image["originalTag"] == "local:tag"
    assert image["description"] == ""


async def test_a_duplicate_name_for_the_same_author_is_a_409(api: Api) -> None:
    await api.create_image("twice")
    resp = await api.call(
        "POST", "/images", params={"name": "twice"},
        json_body={"workspace": "tester/default", "imageID": ZERO_ID},
    )  # fmt: skip
    assert resp.status == 409
    assert "already exists" in (await resp.json())["message"]


async def test_the_same_name_for_another_author_is_fine(api: Api) -> None:
    await api.create_image("shared")
    _, token = await api.new_account("alice")
    other = await api.create_image("shared", token=token, workspace="alice/default")
    assert other["fullName"] == "alice/shared"


@pytest.mark.parametrize("name", ["has space", "a/b", "é", ".."])
async def test_invalid_names_are_refused_with_400(api: Api, name: str) -> None:
    resp = await api.call(
        "POST", "/images", params={"name": name}, json_body={"workspace": "tester/default"}
    )
    assert resp.status == 400
    assert "invalid image name" in (await resp.json())["message"]


async def test_get_resolves_id_and_single_or_double_encoded_full_name(api: Api) -> None:
    image = await api.create_image("wordcount")
    assert await api.ok("GET", f"/images/{image['id']}") == image
    assert await api.ok("GET", "/images/tester%2Fwordcount") == image
    assert await api.ok("GET", "/images/tester%252Fwordcount") == image


async def test_a_bare_name_or_unknown_ref_is_404_so_clients_fall_back(api: Api) -> None:
    await api.create_image("wordcount")
    for ref in ("wordcount", "bp_000000000000", "tester%2Fnope", "nobody%2Fwordcount"):
        resp = await api.call("GET", f"/images/{ref}")
        assert resp.status == 404, ref
        assert (await resp.json())["message"]


async def test_the_beaker_py_fallback_flow_finds_the_image(api: Api) -> None:
    await api.create_image("wordcount")
    assert (await api.call("GET", "/images/wordcount")).status == 404
    me = await api.ok("GET", "/user")
    found = await api.ok("GET", f"/images/{me['name']}%2Fwordcount")
    search = await api.ok(
        "GET", "/workspaces/tester%2Fdefault/images", params={"q": "wordcount", "limit": "1"}
    )
    assert [i["id"] for i in search["data"]] == [found["id"]]


@pytest.mark.parametrize("upload", ["True", "true", "TRUE"])
async def test_upload_credentials_grant_push_and_pull_on_the_image_repository(
    api: Api, upload: str
) -> None:
    image = await api.create_image("pushme")
    repo = await api.ok("GET", f"/images/{image['id']}/repository?upload={upload}")
    assert repo["imageTag"] == image["dockerTag"]
    assert repo["auth"]["server_address"] == "127.0.0.1:5000"
    assert repo["auth"]["user"] == "tester"
    claims = api.client.app[TOKENS].verify(repo["auth"]["password"])
    assert claims.actions_for(repository_of(image)) == {"pull", "push"}


async def test_old_go_clients_get_credentials_with_post(api: Api) -> None:
    image = await api.create_image("go")
    repo = await api.ok("POST", f"/images/{image['id']}/repository?upload=true")
    assert repo["imageTag"] == image["dockerTag"]


async def test_without_upload_the_credentials_only_pull(api: Api) -> None:
    image = await api.create_image("pullme")
    repo = await api.ok("GET", f"/images/{image['id']}/repository")
    claims = api.client.app[TOKENS].verify(repo["auth"]["password"])
    assert claims.actions_for(repository_of(image)) == {"pull"}


async def test_only_the_author_or_an_admin_may_get_upload_credentials(api: Api) -> None:
    _, alice = await api.new_account("alice")
    _, bob = await api.new_account("bob")
    image = await api.create_image("alices", token=alice, workspace="alice/default")
    # bob cannot read alice's private workspace at all: the image does not exist for him.
    assert (
        await api.call("GET", f"/images/{image['id']}/repository?upload=true", bob)
    ).status == 404
    # tester is an admin.
    await api.ok("GET", f"/images/{image['id']}/repository?upload=true")


async def test_a_member_who_is_not_the_author_may_pull_but_not_push(api: Api) -> None:
    _, alice = await api.new_account("alice")
    _, bob = await api.new_account("bob")
    await api.ok("POST", "/workspaces", json_body={"name": "team", "org": "tester"})
    await add_member(api.db, "tester", "alice")
    await add_member(api.db, "tester", "bob")
    image = await api.create_image("team-image", token=alice, workspace="tester/team")
    await api.ok("GET", f"/images/{image['id']}/repository", token=bob)
    resp = await api.call("GET", f"/images/{image['id']}/repository?upload=True", bob)
    assert resp.status == 403
    assert (
        await api.call("PATCH", f"/images/{image['id']}", bob, json_body={"name": "x"})
    ).status == 403
    assert (await api.call("DELETE", f"/images/{image['id']}", bob)).status == 403


async def test_commit_is_refused_with_a_clear_400_when_nothing_was_pushed(api: Api) -> None:
    image = await api.create_image("empty")
    resp = await api.call("PATCH", f"/images/{image['id']}", json_body={"commit": True})
    assert resp.status == 400
    assert "nothing was pushed" in (await resp.json())["message"]
    assert "committed" not in await api.ok("GET", f"/images/{image['id']}")


async def test_commit_pins_the_digest_and_size_and_is_idempotent(api: Api) -> None:
    image = await api.create_image("ready")
    digest, size = await push_latest(
        api.client, repository_of(image), [b"layer-1", b"layer-22"], api.admin_basic
    )
    committed = await api.ok("PATCH", f"/images/{image['id']}", json_body={"commit": True})
    assert committed["committed"].endswith("Z")
    assert committed["digest"] == digest and committed["size"] == size
    again = await api.ok("PATCH", f"/images/{image['id']}", json_body={"commit": True})
    assert again == committed


async def test_a_committed_image_accepts_no_push_and_no_upload_credentials(api: Api) -> None:
    image = await api.create_image("frozen")
    repository = repository_of(image)
    await push_latest(api.client, repository, [b"original"], api.admin_basic)
    await api.ok("PATCH", f"/images/{image['id']}", json_body={"commit": True})

    resp = await put_manifest(
        api.client, repository, "latest", manifest_bytes(b"{}", []), api.admin_basic
    )
    assert resp.status == 403
    assert (await resp.json())["errors"][0]["code"] == "DENIED"

    resp = await api.call("GET", f"/images/{image['id']}/repository?upload=True")
    assert resp.status == 403
    assert "committed" in (await resp.json())["message"]
    # Pull credentials still work.
    await api.ok("GET", f"/images/{image['id']}/repository")


async def test_rename_keeps_the_id_and_the_old_name_stops_resolving(api: Api) -> None:
    image = await api.create_image("before")
    renamed = await api.ok("PATCH", f"/images/{image['id']}", json_body={"name": "after"})
    assert renamed["id"] == image["id"] and renamed["fullName"] == "tester/after"
    assert (await api.call("GET", "/images/tester%2Fbefore")).status == 404
    assert (await api.ok("GET", "/images/tester%2Fafter"))["id"] == image["id"]


async def test_renaming_onto_a_taken_name_is_a_409(api: Api) -> None:
    await api.create_image("taken")
    image = await api.create_image("free")
    resp = await api.call("PATCH", f"/images/{image['id']}", json_body={"name": "taken"})
    assert resp.status == 409


async def test_description_and_narrative_are_set_at_create_and_by_patch(api: Api) -> None:
    image = await api.create_image("story", narrative="# Title")
    assert image["narrative"] == "# Title"
    patched = await api.ok(
        "PATCH", f"/images/{image['id']}",
        json_body={"description": "new words", "narrative": "*more*"},
    )  # fmt: skip
    assert patched["description"] == "new words" and patched["narrative"] == "*more*"


async def test_patch_accepts_a_full_name_ref(api: Api) -> None:
    await api.create_image("byname")
    patched = await api.ok("PATCH", "/images/tester%2Fbyname", json_body={"description": "x"})
    assert patched["description"] == "x"


async def test_delete_removes_the_image_and_its_repository(api: Api) -> None:
    image = await api.create_image("doomed")
    repository = repository_of(image)
    await push_latest(api.client, repository, [b"bytes"], api.admin_basic)
    resp = await api.call("DELETE", f"/images/{image['id']}")
    assert resp.status == 204
    assert (await api.call("GET", f"/images/{image['id']}")).status == 404
    gone = await api.client.get(f"/v2/{repository}/manifests/latest", headers=api.admin_basic)
    assert gone.status == 404


async def test_workspace_image_listing_sorts_filters_and_pages(api: Api) -> None:
    names = ["cherry", "apple", "banana", "apricot", "date"]
    for name in names:
        await api.create_image(name)
    newest_first = await api.ok("GET", "/workspaces/tester%2Fdefault/images")
    assert [i["name"] for i in newest_first["data"]] == names[::-1]
    assert "nextCursor" not in newest_first

    by_name = await api.ok(
        "GET", "/workspaces/tester%2Fdefault/images",
        params={"field": "name", "order": "ascending"},
    )  # fmt: skip
    assert [i["name"] for i in by_name["data"]] == sorted(names)

    matching = await api.ok("GET", "/workspaces/tester%2Fdefault/images", params={"q": "AP"})
    assert {i["name"] for i in matching["data"]} == {"apple", "apricot"}

    seen: list[str] = []
    cursor = "AAAAAAAAAAA="
    while cursor:
        page = await api.ok(
            "GET", "/workspaces/tester%252Fdefault/images",
            params={"cursor": cursor, "limit": "2", "field": "created", "order": "ascending"},
        )  # fmt: skip
        seen += [i["name"] for i in page["data"]]
        cursor = page.get("nextCursor", "")
    assert seen == names

    workspace = await api.ok("GET", "/workspaces/tester%2Fdefault")
    assert workspace["size"]["images"] == len(names)


async def test_listing_rejects_unknown_sort_fields(api: Api) -> None:
    resp = await api.call("GET", "/workspaces/tester%2Fdefault/images", params={"field": "size"})
    assert resp.status == 400


async def test_creating_in_a_workspace_one_cannot_write_is_refused(api: Api) -> None:
    _, token = await api.new_account("mallory")
    resp = await api.call(
        "POST", "/images", token, params={"name": "x"}, json_body={"workspace": "tester/default"}
    )
    assert resp.status == 404


async def test_a_manifest_still_arriving_when_the_commit_lands_is_refused(api: Api) -> None:
    image = await api.create_image("race-manifest")
    repository = repository_of(image)
    user, password = await api.push_credentials(image)
    pinned, _ = await push_latest(api.client, repository, [b"first"], basic(user, password))
    replacement = manifest_bytes(b"{}", [])
    config = await api.client.post(
        f"/v2/{repository}/blobs/uploads/",
        params={"digest": digest_of(b"{}")},
        data=b"{}",
        headers=basic(user, password),
    )
    assert config.status == 201
    gate = GatedBody(replacement[:10], replacement[10:])
    put = asyncio.create_task(
        api.client.put(
            f"/v2/{repository}/manifests/latest",
            data=gate.chunks(),
            headers={"Content-Type": OCI_MANIFEST, **basic(user, password)},
        )
    )
    await gate.first_part_sent.wait()
    committed = await api.ok("PATCH", f"/images/{image['id']}", json_body={"commit": True})
    gate.release.set()
    resp = await put
    assert resp.status == 403
    assert (await resp.json())["errors"][0]["code"] == "DENIED"
    assert committed["digest"] == pinned
    latest = await api.client.head(
        f"/v2/{repository}/manifests/latest",
        headers={"Accept": OCI_MANIFEST, **basic(user, password)},
    )
    assert latest.headers["Docker-Content-Digest"] == pinned


async def test_a_blob_still_arriving_when_the_commit_lands_is_not_linked(api: Api) -> None:
    image = await api.create_image("race-blob")
    repository = repository_of(image)
    user, password = await api.push_credentials(image)
    await push_latest(api.client, repository, [b"first"], basic(user, password))
    gate = GatedBody(b"late ", b"layer")
    upload = asyncio.create_task(
        api.client.post(
            f"/v2/{repository}/blobs/uploads/",
            params={"digest": digest_of(gate.whole)},
            data=gate.chunks(),
            headers=basic(user, password),
        )
    )
    await gate.first_part_sent.wait()
    await api.ok("PATCH", f"/images/{image['id']}", json_body={"commit": True})
    gate.release.set()
    resp = await upload
    assert resp.status == 403
    head = await api.client.head(
        f"/v2/{repository}/blobs/{digest_of(gate.whole)}", headers=api.admin_basic
    )
    assert head.status == 404


async def test_untagging_or_deleting_in_a_committed_repository_is_refused(api: Api) -> None:
    image = await api.create_image("keep-me")
    repository = repository_of(image)
    digest, _ = await push_latest(api.client, repository, [b"kept"], api.admin_basic)
    await api.ok("PATCH", f"/images/{image['id']}", json_body={"commit": True})
    for path in ("manifests/latest", f"manifests/{digest}"):
        resp = await api.client.delete(f"/v2/{repository}/{path}", headers=api.admin_basic)
        assert resp.status == 403, path
    got = await api.client.get(
        f"/v2/{repository}/manifests/latest",
        headers={"Accept": OCI_MANIFEST, **api.admin_basic},
    )
    assert got.headers["Docker-Content-Digest"] == digest


@pytest.mark.parametrize("name", ["twin\n", "twin\r", " twin", "twin "])
async def test_names_are_matched_whole_so_a_final_newline_is_refused(api: Api, name: str) -> None:
    resp = await api.call(
        "POST",
        "/images",
        params={"name": name},
        json_body={"workspace": "tester/default", "imageID": ZERO_ID, "imageTag": "x"},
    )
    assert resp.status == 400, name
    resp = await api.call("POST", "/workspaces", json_body={"name": "default\n", "org": "tester"})
    assert resp.status == 400
