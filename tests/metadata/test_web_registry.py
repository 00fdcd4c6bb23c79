"""The registry view: one's plain repositories and their tags, and deleting a tag."""

from __future__ import annotations

from storage.sizes import human_bytes
from tests.metadata.helpers import Api, basic
from tests.metadata.web_helpers import Browser, build_config, push_built, push_index


async def test_the_registry_view_lists_plain_repositories_with_their_tags(api: Api) -> None:
    _, token = await api.new_account("dev")
    login = basic("dev", token)
    digest, size = await push_built(api.client, "dev/tool", login, build_config(), [b"l" * 2048])
    await push_index(api.client, "dev/multi", login, ["amd64", "arm64"])
    image = await api.create_image("not-plain", token=token, workspace="dev/default")
    browser = Browser(api.client)
    await browser.sign_in(token)
    listing = await browser.page("/registry")
    assert 'href="/registry/dev/tool"' in listing and 'href="/registry/dev/multi"' in listing
    assert str(image["dockerTag"]).split("/", 1)[1] not in listing
    tags = await browser.page("/registry/dev/tool")
    assert "<code>latest</code>" in tags and digest[:19] in tags
    assert "linux/amd64" in tags and f'<td class="num">{human_bytes(size)}</td>' in tags
    multi = await browser.page("/registry/dev/multi")
    assert "linux/amd64" in multi and "linux/arm64" in multi


async def test_deleting_a_tag_removes_it(api: Api) -> None:
    _, token = await api.new_account("dev")
    login = basic("dev", token)
    await push_built(api.client, "dev/app", login, build_config(), [b"a"], tag="v1")
    await push_built(api.client, "dev/app", login, build_config("arm64"), [b"b"], tag="v2")
    browser = Browser(api.client)
    await browser.sign_in(token)
    status, _, location = await browser.post(
        "/registry/delete-tag",
        {"repository": "dev/app", "tag": "v1"},
        csrf_from="/registry/dev/app",
    )
    assert status == 303 and location == "/registry/dev/app"
    page = await browser.page(location)
    assert "<code>v1</code>" not in page and "<code>v2</code>" in page
    assert (await api.client.get("/v2/dev/app/manifests/v1", headers=login)).status == 404
    status, _, _ = await browser.post(
        "/registry/delete-tag", {"repository": "dev/app", "tag": "v1"}, csrf_from=location
    )
    assert status == 404


async def test_another_accounts_repositories_are_neither_shown_nor_deletable(api: Api) -> None:
    _, token = await api.new_account("dev")
    await push_built(api.client, "dev/app", basic("dev", token), build_config(), [b"a"])
    _, other = await api.new_account("other")
    browser = Browser(api.client)
    await browser.sign_in(other)
    assert "dev/app" not in await browser.page("/registry")
    assert (await browser.get("/registry/dev/app"))[0] == 404
    status, _, _ = await browser.post(
        "/registry/delete-tag", {"repository": "dev/app", "tag": "latest"}, csrf_from="/registry"
    )
    assert status == 404
    assert (
        await api.client.get("/v2/dev/app/manifests/latest", headers=api.admin_basic)
    ).status == 200


async def test_the_registry_view_shows_storage_used_one_own_or_every_accounts_for_admins(
    api: Api,
) -> None:
    _, token = await api.new_account("dev")
    _, size = await push_built(api.client, "dev/app", basic("dev", token), build_config(), [b"z"])
    browser = Browser(api.client)
    await browser.sign_in(token)
    own = await browser.page("/registry")
    assert "<h2>Storage</h2>" in own and f'<td class="num">{human_bytes(size)}</td>' in own
    assert "<td>tester</td>" not in own and "unlimited" in own
    browser.forget()
    await browser.sign_in(api.token)
    every = await browser.page("/registry")
    assert "<td>dev</td>" in every and "<td>tester</td>" in every
