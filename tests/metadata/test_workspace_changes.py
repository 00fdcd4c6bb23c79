"""Changing workspaces: rename, archive, visibility, and moving images in (transfer)."""

from __future__ import annotations

import pytest

from tests.metadata.helpers import Api


async def new_workspace(api: Api, name: str, token: str | None = None, org: str = "tester") -> str:
    created = await api.ok("POST", "/workspaces", token, json_body={"name": name, "org": org})
    return str(created["id"])


async def test_rename_keeps_the_id_and_the_new_full_name_resolves(api: Api) -> None:
    ws = await new_workspace(api, "old")
    renamed = await api.ok("PATCH", f"/workspaces/{ws}", json_body={"name": "new"})
    assert renamed["id"] == ws and renamed["fullName"] == "tester/new"
    assert (await api.ok("GET", "/workspaces/tester%2Fnew"))["id"] == ws
    assert (await api.call("GET", "/workspaces/tester%2Fold")).status == 404


async def test_renaming_onto_a_taken_name_is_a_409(api: Api) -> None:
    ws = await new_workspace(api, "one")
    await new_workspace(api, "two")
    resp = await api.call("PATCH", f"/workspaces/{ws}", json_body={"name": "two"})
    assert resp.status == 409


async def test_an_invalid_new_name_is_400(api: Api) -> None:
    ws = await new_workspace(api, "one")
    resp = await api.call("PATCH", f"/workspaces/{ws}", json_body={"name": "a b"})
    assert resp.status == 400


async def test_an_archived_workspace_takes_no_images_and_no_rename_until_unarchived(
    api: Api,
) -> None:
    ws = await new_workspace(api, "done")
    archived = await api.ok("PATCH", "/workspaces/tester%2Fdone", json_body={"archive": True})
    assert archived["archived"] is True
    resp = await api.call(
        "POST", "/images", params={"name": "late"},
        json_body={"workspace": ws, "imageID": "sha256:" + "0" * 64},
    )  # fmt: skip
    assert resp.status == 403
    resp = await api.call("PATCH", f"/workspaces/{ws}", json_body={"name": "renamed"})
    assert resp.status == 403 and "archived" in (await resp.json())["message"]
    back = await api.ok("PATCH", f"/workspaces/{ws}", json_body={"archive": False})
    assert back["archived"] is False
    assert (await api.ok("PATCH", f"/workspaces/{ws}", json_body={"name": "renamed"}))["name"]


async def test_set_visibility_through_auth_as_beaker_py_sends_it(api: Api) -> None:
    ws = await new_workspace(api, "shared")
    made_public = await api.ok("PATCH", f"/workspaces/{ws}/auth", json_body={"public": True})
    assert made_public["public"] is True and made_public["requesterAuth"] == "all"
    assert (await api.ok("GET", f"/workspaces/{ws}"))["public"] is True
    _, token = await api.new_account("bob")
    # Now anyone may read it, and its permissions say bob may only read.
    assert (await api.ok("GET", f"/workspaces/{ws}/auth", token))["requesterAuth"] == "read"
    await api.ok("PATCH", f"/workspaces/{ws}/auth", json_body={"public": False})
    assert (await api.call("GET", f"/workspaces/{ws}", token)).status == 404


async def test_a_reader_who_is_no_member_may_not_change_a_public_workspace(api: Api) -> None:
    ws = await new_workspace(api, "open")
    await api.ok("PATCH", f"/workspaces/{ws}", json_body={"public": True})
    _, token = await api.new_account("mallory")
    for path, body in (
        (f"/workspaces/{ws}", {"archive": True}),
        (f"/workspaces/{ws}", {"name": "mine"}),
        (f"/workspaces/{ws}/auth", {"public": False}),
        (f"/workspaces/{ws}/transfer", {"ids": []}),
    ):
        resp = await api.call("PATCH" if "transfer" not in path else "POST", path, token,
                              json_body=body)  # fmt: skip
        assert resp.status == 403, path


async def test_someone_elses_private_workspace_is_404_for_every_change(api: Api) -> None:
    ws = await new_workspace(api, "private")
    _, token = await api.new_account("mallory")
    assert (
        await api.call("PATCH", f"/workspaces/{ws}", token, json_body={"archive": True})
    ).status == 404
    assert (await api.call("GET", f"/workspaces/{ws}/auth", token)).status == 404
    resp = await api.call("POST", f"/workspaces/{ws}/transfer", token, json_body={"ids": []})
    assert resp.status == 404


async def test_transfer_moves_images_by_id_or_full_name(api: Api) -> None:
    ws = await new_workspace(api, "target")
    one = await api.create_image("one")
    await api.create_image("two")
    resp = await api.call(
        "POST", f"/workspaces/{ws}/transfer", json_body={"ids": [one["id"], "tester/two"]}
    )
    assert resp.status == 204, await resp.text()
    listed = await api.ok("GET", f"/workspaces/{ws}/images")
    assert sorted(i["name"] for i in listed["data"]) == ["one", "two"]
    assert (await api.ok("GET", f"/images/{one['id']}"))["workspaceRef"]["id"] == ws


async def test_transfer_of_someone_elses_image_is_refused_and_moves_nothing(api: Api) -> None:
    _, token = await api.new_account("alice")
    ws = await new_workspace(api, "mine", token, org="alice")
    own = await api.create_image("own", token, workspace="alice/default")
    foreign = await api.create_image("foreign")  # tester's, private to alice
    resp = await api.call(
        "POST", f"/workspaces/{ws}/transfer", token, json_body={"ids": [own["id"], foreign["id"]]}
    )
    assert resp.status == 404
    assert (await api.ok("GET", f"/images/{own['id']}", token))["workspaceRef"]["name"] == "default"


async def test_transfer_of_a_readable_image_one_may_not_change_is_403(api: Api) -> None:
    _, token = await api.new_account("alice")
    ws = await new_workspace(api, "mine", token, org="alice")
    await api.ok("PATCH", "/workspaces/tester%2Fdefault", json_body={"public": True})
    public = await api.create_image("public")
    resp = await api.call(
        "POST", f"/workspaces/{ws}/transfer", token, json_body={"ids": [public["id"]]}
    )
    assert resp.status == 403


async def test_transfer_into_or_out_of_an_archived_workspace_is_403(api: Api) -> None:
    target = await new_workspace(api, "target")
    image = await api.create_image("img")
    await api.ok("PATCH", f"/workspaces/{target}", json_body={"archive": True})
    resp = await api.call(
        "POST", f"/workspaces/{target}/transfer", json_body={"ids": [image["id"]]}
    )
    assert resp.status == 403
    await api.ok("PATCH", f"/workspaces/{target}", json_body={"archive": False})
    await api.ok("PATCH", "/workspaces/tester%2Fdefault", json_body={"archive": True})
    resp = await api.call(
        "POST", f"/workspaces/{target}/transfer", json_body={"ids": [image["id"]]}
    )
    assert resp.status == 403
    assert (await api.ok("GET", f"/images/{image['id']}"))["workspaceRef"]["name"] == "default"


BAD_BODIES = [
    b"{", b"[]", b"null", b'{"name": 7}', b'{"name": "a/b"}', b'{"archive": "maybe"}',
    b'{"public": [true]}', b'{"ids": "bp_x"}', b'{"ids": [1, 2]}', b'{"ids": [{"a": 1}]}',
    b'{"ids": ["x"]}', b'{"description": 1e999}', b'{"name": "\\u0000"}',
    b'{"sortClauses": [{"field": 1}]}', b'{"filterClauses": [{"field": "name", "value": null}]}',
    b'{"filterClauses": [{"field": "name", "value": {"a": 1}}]}',
]  # fmt: skip


@pytest.mark.parametrize("body", BAD_BODIES, ids=[repr(b[:24]) for b in BAD_BODIES])
async def test_bad_bodies_on_the_new_routes_are_4xx_with_a_message(api: Api, body: bytes) -> None:
    ws = await new_workspace(api, "target")
    for method, path in [
        ("PATCH", f"/workspaces/{ws}"),
        ("PATCH", f"/workspaces/{ws}/auth"),
        ("POST", f"/workspaces/{ws}/transfer"),
        ("POST", "/images/search"),
    ]:
        resp = await api.client.request(method, "/api/v3" + path, data=body, headers=api.headers())
        # Bodies that happen to be valid for one route (an empty change) answer 2xx there.
        assert resp.status < 500, (method, path, resp.status)
        if resp.status >= 400:
            assert (await resp.json())["message"], (method, path)
