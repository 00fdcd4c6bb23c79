"""POST /images/search, with the body the Go client sends (ImageSearchOptions)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.metadata.helpers import Api


async def search(api: Api, body: dict[str, Any], token: str | None = None, **params: str) -> Any:
    return await api.ok("POST", "/images/search", token, json_body=body, params=params)


def names(images: list[dict[str, Any]]) -> list[str]:
    return [image["name"] for image in images]


async def test_the_answer_is_a_json_array_of_images_newest_first_by_default(api: Api) -> None:
    for name in ("one", "two", "three"):
        await api.create_image(name)
    found = await search(api, {})
    assert names(found) == ["three", "two", "one"]
    assert found[0]["fullName"] == "tester/three" and "dockerTag" in found[0]


async def test_sort_clauses_order_by_name_either_way(api: Api) -> None:
    for name in ("b", "c", "a"):
        await api.create_image(name)
    up = await search(api, {"sortClauses": [{"field": "name", "order": "ascending"}]})
    down = await search(api, {"sortClauses": [{"field": "name", "order": "descending"}]})
    assert names(up) == ["a", "b", "c"]
    assert names(down) == ["c", "b", "a"]


async def test_the_older_snake_case_keys_are_read_too(api: Api) -> None:
    for name in ("b", "a"):
        await api.create_image(name)
    found = await search(api, {"sort_clauses": [{"field": "name", "order": "ascending"}]})
    assert names(found) == ["a", "b"]


async def test_ctn_matches_text_in_the_name_case_insensitively(api: Api) -> None:
    for name in ("wordcount", "WordSplit", "other"):
        await api.create_image(name)
    clause = {"field": "name", "operator": "ctn", "value": "word"}
    assert sorted(names(await search(api, {"filterClauses": [clause]}))) == [
        "WordSplit", "wordcount",
    ]  # fmt: skip


async def test_eq_on_the_author_takes_a_name_or_an_id_and_user_is_its_go_name(api: Api) -> None:
    account, token = await api.new_account("alice")
    await api.create_image("mine", token, workspace="alice/default")
    await api.create_image("theirs")
    by_name = {"filterClauses": [{"field": "author", "operator": "eq", "value": "alice"}]}
    by_id = {"filterClauses": [{"field": "user", "operator": "eq", "value": account.id}]}
    assert names(await search(api, by_name)) == ["mine"]
    assert names(await search(api, by_id)) == ["mine"]


async def test_created_gte_and_lt_bound_a_time_range(api: Api) -> None:
    first = await api.create_image("first")
    second = await api.create_image("second")
    since = {"field": "created", "operator": "gte", "value": second["created"]}
    before = {"field": "created", "operator": "lt", "value": second["created"]}
    assert names(await search(api, {"filterClauses": [since]})) == ["second"]
    assert names(await search(api, {"filterClauses": [before]})) == [first["name"]]


async def test_the_or_combinator_matches_either_clause(api: Api) -> None:
    for name in ("a", "b", "c"):
        await api.create_image(name)
    body = {
        "filterClauses": [
            {"field": "name", "operator": "eq", "value": "a"},
            {"field": "name", "operator": "eq", "value": "c"},
        ],
        "filterCombinator": "or",
        "sortClauses": [{"field": "name", "order": "ascending"}],
    }
    assert names(await search(api, body)) == ["a", "c"]
    body["filterCombinator"] = "and"
    assert names(await search(api, body)) == []


async def test_a_workspace_clause_keeps_the_images_of_one_workspace(api: Api) -> None:
    await api.ok("POST", "/workspaces", json_body={"name": "other", "org": "tester"})
    await api.create_image("here")
    await api.create_image("there", workspace="tester/other")
    clause = {"field": "workspace", "operator": "eq", "value": "tester/other"}
    assert names(await search(api, {"filterClauses": [clause]})) == ["there"]


async def test_pages_are_numbered_from_zero(api: Api) -> None:
    for name in ("a", "b", "c"):
        await api.create_image(name)
    body = {"sortClauses": [{"field": "name", "order": "ascending"}]}
    assert names(await search(api, body, page="0", limit="2")) == ["a", "b"]
    assert names(await search(api, body, page="1", limit="2")) == ["c"]


async def test_private_images_of_others_are_not_found(api: Api) -> None:
    await api.create_image("secret")
    _, token = await api.new_account("mallory")
    await api.create_image("own", token, workspace="mallory/default")
    assert names(await search(api, {}, token)) == ["own"]


async def test_images_of_a_public_workspace_are_found_by_anyone(api: Api) -> None:
    await api.ok("POST", "/workspaces", json_body={"name": "open", "org": "tester", "public": True})
    await api.create_image("shared", workspace="tester/open")
    await api.create_image("secret")
    _, token = await api.new_account("mallory")
    assert names(await search(api, {}, token)) == ["shared"]


@pytest.mark.parametrize(
    "body",
    [
        {"filterClauses": [{"field": "size", "operator": "eq", "value": 1}]},
        {"filterClauses": [{"field": "name", "operator": "like", "value": "x"}]},
        {"filterClauses": [{"field": "created", "operator": "gte", "value": "yesterday"}]},
        {"filterClauses": [{"field": "created", "operator": "ctn", "value": 5}]},
        {"filterClauses": [{"field": "workspace", "operator": "ctn", "value": "x"}]},
        {"sortClauses": [{"field": "name", "order": "sideways"}]},
        {"filterCombinator": "xor"},
        {"filterClauses": "name"},
    ],
)
async def test_bad_clauses_answer_400_with_a_message(api: Api, body: dict[str, Any]) -> None:
    resp = await api.call("POST", "/images/search", json_body=body)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["message"]


@pytest.mark.parametrize("page", ["-1", "x", "9" * 5000, "1234567"])
async def test_a_bad_page_is_400(api: Api, page: str) -> None:
    resp = await api.call("POST", "/images/search", json_body={}, params={"page": page})
    assert resp.status == 400


@pytest.mark.parametrize("value", [1e300, 10**30, "Infinity", "9999-99-99T00:00:00Z"])
async def test_times_out_of_range_are_400_not_a_crash(api: Api, value: object) -> None:
    clause = {"field": "created", "operator": "gte", "value": value}
    resp = await api.call("POST", "/images/search", json_body={"filterClauses": [clause]})
    assert resp.status == 400, await resp.text()


async def test_an_infinite_time_in_the_json_is_400(api: Api) -> None:
    body = b'{"filterClauses": [{"field": "created", "operator": "lt", "value": Infinity}]}'
    resp = await api.client.post("/api/v3/images/search", data=body, headers=api.headers())
    assert resp.status == 400, await resp.text()
