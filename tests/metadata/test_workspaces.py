"""Workspaces: get by ID or encoded full name, create (409 on conflict), list with cursors."""

from __future__ import annotations

from tests.metadata.helpers import Api


async def test_a_workspace_is_found_by_id_and_by_encoded_or_double_encoded_full_name(
    api: Api,
) -> None:
    by_name = await api.ok("GET", "/workspaces/tester%2Fdefault")
    assert by_name["id"].startswith("ws_")
    assert await api.ok("GET", "/workspaces/tester%252Fdefault") == by_name
    assert await api.ok("GET", f"/workspaces/{by_name['id']}") == by_name
    assert by_name["size"] == {"datasets": 0, "experiments": 0, "groups": 0, "images": 0}
    assert set(by_name) >= {
        "id", "name", "fullName", "author", "owner", "created", "modified", "archived", "size",
    }  # fmt: skip


async def test_an_unknown_workspace_is_404(api: Api) -> None:
    resp = await api.call("GET", "/workspaces/tester%2Fnope")
    assert resp.status == 404
    assert "not found" in (await resp.json())["message"]


async def test_creating_a_workspace_then_again_is_a_conflict(api: Api) -> None:
    body = {"name": "project", "org": "tester", "description": "d"}
    created = await api.ok("POST", "/workspaces", json_body=body)
    assert created["fullName"] == "tester/project"
    assert created["description"] == "d"
    resp = await api.call("POST", "/workspaces", json_body=body)
    assert resp.status == 409
    assert "already exists" in (await resp.json())["message"]


async def test_creating_a_workspace_in_an_org_one_is_not_in_is_forbidden(api: Api) -> None:
    _, token = await api.new_account("mallory")
    resp = await api.call("POST", "/workspaces", token, json_body={"name": "x", "org": "tester"})
    assert resp.status == 403


async def test_private_workspaces_of_other_orgs_are_invisible(api: Api) -> None:
    _, token = await api.new_account("mallory")
    assert (await api.call("GET", "/workspaces/tester%2Fdefault", token)).status == 404
    listed = await api.ok("GET", "/workspaces", token)
    assert [w["fullName"] for w in listed["data"]] == ["mallory/default"]


async def test_workspace_listing_pages_with_cursors_and_omits_the_last_cursor(api: Api) -> None:
    for i in range(4):
        await api.ok("POST", "/workspaces", json_body={"name": f"ws{i}", "org": "tester"})
    seen: list[str] = []
    cursor = "AAAAAAAAAAA="
    pages = 0
    while True:
        page = await api.ok(
            "GET", "/workspaces", params={"org": "tester", "cursor": cursor, "limit": "2"}
        )
        pages += 1
        seen += [w["fullName"] for w in page["data"]]
        if "nextCursor" not in page:
            break
        cursor = page["nextCursor"]
    assert pages == 3
    assert seen == sorted(seen) and len(seen) == 5  # ws0..ws3 and default


async def test_a_bad_cursor_is_a_400(api: Api) -> None:
    resp = await api.call("GET", "/workspaces", params={"cursor": "!!!"})
    assert resp.status == 400
