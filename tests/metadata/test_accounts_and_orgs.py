"""Whoami, accounts, organizations."""

from __future__ import annotations

import pytest

from metadata.errors import Invalid
from metadata.organizations import add_member, create_organization
from tests.metadata.helpers import Api


async def test_whoami_and_account_lookup_by_name_or_id(api: Api) -> None:
    me = await api.ok("GET", "/user")
    assert set(me) >= {"id", "name", "displayName"}
    assert me["id"].startswith("us_")
    assert await api.ok("GET", "/users/tester") == me
    assert await api.ok("GET", f"/users/{me['id']}") == me


async def test_an_unknown_account_or_org_is_404(api: Api) -> None:
    assert (await api.call("GET", "/users/nobody")).status == 404
    assert (await api.call("GET", "/orgs/ai2")).status == 404


async def test_my_orgs_lists_the_orgs_i_am_a_member_of(api: Api) -> None:
    await create_organization(api.db, "ai2", "AI2")
    await create_organization(api.db, "other")
    await add_member(api.db, "ai2", "tester")
    body = await api.ok("GET", "/user/orgs")
    assert [o["name"] for o in body["data"]] == ["ai2", "tester"]
    org = await api.ok("GET", "/orgs/ai2")
    assert set(org) >= {"id", "name", "displayName", "description", "created"}
    assert await api.ok("GET", f"/orgs/{org['id']}") == org


async def test_a_new_account_gets_a_personal_org_and_default_workspace(api: Api) -> None:
    account, token = await api.new_account("alice")
    assert not account.admin
    workspace = await api.ok("GET", "/workspaces/alice%2Fdefault", token=token)
    assert workspace["owner"]["name"] == "alice"
    assert workspace["author"]["name"] == "alice"


async def test_account_names_must_also_be_registry_namespaces(api: Api) -> None:
    for name in ("Alice", "a__", "-bob", "carol."):
        with pytest.raises(Invalid, match="registry namespace"):
            await api.new_account(name)
    account, _ = await api.new_account("dave.smith_2")
    assert account.name == "dave.smith_2"
