"""The web pages in-process, on both backends: what each page shows, and to whom."""

from __future__ import annotations

import re

from metadata.web.listing import PAGE_SIZE
from metadata.web.render import CSP
from tests.metadata.helpers import Api
from tests.metadata.web_helpers import SIGNATURE_TYPE, Browser, committed_image

PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


async def _public_workspace(api: Api, name: str = "open") -> str:
    await api.ok("POST", "/workspaces", json_body={"name": name, "org": "tester", "public": True})
    return f"tester/{name}"


def _names(page: str) -> list[str]:
    """The image names of a page's table, in order."""
    return re.findall(r'class="image-name">([^<]+)<', page)


async def test_anonymous_visitors_see_public_images_only(api: Api) -> None:
    public_ws = await _public_workspace(api)
    await api.create_image("shared", workspace=public_ws, description="for everyone")
    private = await api.create_image("secret", description="not for you")
    browser = Browser(api.client)
    home = await browser.page("/")
    assert _names(home) == ["tester/shared"] and "for everyone" in home
    assert "secret" not in home and "Sign in" in home
    assert (await browser.get(f"/im/{private['id']}"))[0] == 404
    assert (await browser.get("/ws/tester/default"))[0] == 404
    assert "secret" not in await browser.page("/accounts/tester")
    workspaces = await browser.page("/workspaces")
    assert "tester/open" in workspaces and "tester/default" not in workspaces


async def test_signed_in_the_home_page_lists_what_the_account_may_read(api: Api) -> None:
    await api.create_image("mine")
    browser = Browser(api.client)
    await browser.sign_in(api.token)
    home = await browser.page("/")
    assert _names(home) == ["tester/mine"]
    assert "Sign out" in home and 'href="/registry"' in home


async def test_a_private_image_is_invisible_to_another_account(api: Api) -> None:
    private = await api.create_image("private-one")
    _, other_token = await api.new_account("other")
    browser = Browser(api.client)
    await browser.sign_in(other_token)
    assert "private-one" not in await browser.page("/")
    assert "private-one" not in await browser.page("/?q=private")
    assert (await browser.get(f"/im/{private['id']}"))[0] == 404
    assert (await browser.get("/ws/tester/default"))[0] == 404
    assert (await browser.get(f"/im/{private['id']}/edit"))[0] == 404


async def test_search_matches_name_description_and_author(api: Api) -> None:
    await api.create_image("wordcount", description="Counts words")
    await api.create_image("resize", description="Shrinks pictures")
    _, other_token = await api.new_account("painter")
    await api.create_image("brush", token=other_token, workspace="painter/default")
    browser = Browser(api.client)
    await browser.sign_in(api.token)  # an admin reads every workspace
    assert _names(await browser.page("/?q=WORD")) == ["tester/wordcount"]
    assert _names(await browser.page("/?q=pictures")) == ["tester/resize"]
    assert _names(await browser.page("/?q=painter")) == ["painter/brush"]
    assert _names(await browser.page("/?author=painter")) == ["painter/brush"]
    assert sorted(_names(await browser.page("/?workspace=tester/default"))) == [
        "tester/resize", "tester/wordcount",
    ]  # fmt: skip
    nothing = await browser.page("/?workspace=nobody/none")
    assert _names(nothing) == [] and "There is no workspace nobody/none" in nothing


async def test_lists_sort_by_each_column_both_ways(api: Api) -> None:
    for name in ("beta", "alpha", "gamma"):
        await api.create_image(name)
    browser = Browser(api.client)
    await browser.sign_in(api.token)
    newest = ["tester/gamma", "tester/alpha", "tester/beta"]
    assert _names(await browser.page("/")) == newest
    assert _names(await browser.page("/?sort=created&order=asc")) == newest[::-1]
    by_name = await browser.page("/?sort=name")
    assert _names(by_name) == ["tester/alpha", "tester/beta", "tester/gamma"]
    # The header of the column sorted by links to the other direction, and says which it is.
    assert 'aria-sort="ascending"' in by_name and "sort=name&amp;order=desc" in by_name
    assert _names(await browser.page("/?sort=name&order=desc"))[0] == "tester/gamma"
    assert _names(await browser.page("/?sort=bogus&order=sideways")) == newest


async def test_the_home_page_pages_through_images_keeping_the_search(api: Api) -> None:
    for n in range(PAGE_SIZE + 2):
        await api.create_image(f"img{n:03}")
    await api.create_image("unrelated")
    browser = Browser(api.client)
    await browser.sign_in(api.token)
    first = await browser.page("/?q=img&sort=name")
    assert len(_names(first)) == PAGE_SIZE and _names(first)[0] == "tester/img000"
    assert "q=img&amp;sort=name&amp;order=asc&amp;page=2" in first and 'rel="prev"' not in first
    second = await browser.page("/?q=img&sort=name&order=asc&page=2")
    assert _names(second) == ["tester/img050", "tester/img051"]
    assert 'rel="prev"' in second and 'rel="next"' not in second


async def test_the_image_page_shows_config_history_layers_and_pull_commands(api: Api) -> None:
    image = await committed_image(
        api, "wordcount", narrative="# Usage\n\n| in | out |\n|---|---|\n| a | 1 |\n\n- [x] done"
    )
    browser = Browser(api.client)
    await browser.sign_in(api.token)
    page = await browser.page(f"/im/{image['id']}")
    # The narrative first, with GFM tables and task lists.
    assert page.index("<h1>Usage</h1>") < page.index('id="pull"') < page.index('id="inside"')
    assert "<td>a</td>" in page and 'type="checkbox"' in page and "disabled" in page
    for shown in (
        "linux/amd64", "/usr/bin/wordcount", "--input /data/in.txt", "/srv/wordcount",
        "counter", "GREETING=hello", "org.opencontainers.image.source", "8080/tcp",
        "RUN make install", "no layer", image["digest"],
        "beaker image pull tester/wordcount", f"docker pull {image['dockerTag']}",
        "docker login", 'class="copy"',
    ):  # fmt: skip
        assert shown in page, shown
    # Two of the four build steps made the two layers, and each step names its layer.
    steps = re.findall(r'<td class="num">(\d+)</td>\s*<td class="wide"><code class="step">', page)
    assert steps == ["1", "2", "3", "4"]
    assert page.count('title="sha256:') == 2


async def test_a_multi_platform_index_shows_every_platform_and_the_referrers(api: Api) -> None:
    image = await committed_image(api, "multi", arches=["amd64", "arm64"], referrer=True)
    browser = Browser(api.client)
    await browser.sign_in(api.token)
    page = await browser.page(f"/im/{image['id']}")
    assert "A multi-platform index of 2 platforms" in page
    assert page.count('<details class="platform"') == 2
    assert "<h3>linux/amd64</h3>" in page and "<h3>linux/arm64</h3>" in page
    assert 'id="referrers"' in page and SIGNATURE_TYPE in page


async def test_an_uncommitted_image_says_so_and_its_owner_may_commit_it(api: Api) -> None:
    image = await api.create_image("draft")
    browser = Browser(api.client)
    await browser.sign_in(api.token)
    page = await browser.page(f"/im/{image['id']}")
    assert "not committed yet" in page and f'action="/im/{image["id"]}/commit"' in page


async def test_workspace_and_account_pages_list_their_images(api: Api) -> None:
    public_ws = await _public_workspace(api, "shared-ws")
    await api.create_image("in-shared", workspace=public_ws)
    await api.create_image("in-default")
    browser = Browser(api.client)
    workspace = await browser.page("/ws/tester/shared-ws")
    assert _names(workspace) == ["tester/in-shared"] and "badge public" in workspace
    await browser.sign_in(api.token)
    assert "badge private" in await browser.page("/ws/tester/default")
    account = await browser.page("/accounts/tester")
    assert sorted(_names(account)) == ["tester/in-default", "tester/in-shared"]
    assert (await browser.get("/accounts/nobody"))[0] == 404


async def test_every_page_carries_the_strict_headers_the_404_too(api: Api) -> None:
    image = await api.create_image("framed")
    browser = Browser(api.client)
    await browser.sign_in(api.token)
    paths = ["/", "/workspaces", "/ws/tester/default", "/accounts/tester", f"/im/{image['id']}",
             f"/im/{image['id']}/edit", "/registry", "/signin", "/im/bp_nope00000000"]  # fmt: skip
    for path in paths:
        resp = await api.client.get(path)
        assert resp.content_type == "text/html", path
        for header, value in PAGE_HEADERS.items():
            assert resp.headers[header] == value, (path, header)
        assert resp.headers["Cache-Control"] == "no-store", path
    assert "unsafe-inline" not in CSP and "script-src 'self'" in CSP


async def test_static_files_are_named_by_their_content_and_cached_for_long(api: Api) -> None:
    page = await Browser(api.client).page("/")
    for url in re.findall(r'(?:href|src)="(/static/[^"]+)"', page):
        assert re.fullmatch(r"/static/beakerd\.[0-9a-f]{12}\.(css|js)", url), url
        resp = await api.client.get(url)
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert (await api.client.get("/static/beakerd.000000000000.css")).status == 404


async def test_bad_query_values_give_pages_not_errors(api: Api) -> None:
    browser = Browser(api.client)
    for path in ("/?page=-1", "/?page=99999999999", "/?page=%F0", "/?q=%00", "/workspaces?page=x",
                 "/?sort=%3Cscript%3E", "/registry/..%2F..", "/im/%2E%2E"):  # fmt: skip
        status, text = await browser.get(path)
        assert status in {200, 400, 404}, (path, status)
        assert "Traceback" not in text


XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'><svg onload=alert(3)>"


async def test_html_in_every_field_and_the_narrative_comes_out_as_text(api: Api) -> None:
    spec = {"name": "xss", "org": "tester", "public": True, "description": XSS}
    await api.ok("POST", "/workspaces", json_body=spec)
    image = await committed_image(
        api, "xss", workspace="tester/xss", description=XSS, marker=XSS,
        narrative=f"{XSS}\n\n[link](javascript:alert(4)) <a href='javascript:alert(5)'>x</a>",
    )  # fmt: skip
    await api.db.execute("UPDATE accounts SET display_name = ? WHERE name = 'tester'", (XSS,))
    browser = Browser(api.client)
    pages = [
        await browser.page(f"/im/{image['id']}"), await browser.page("/?q=" + XSS),
        await browser.page("/workspaces"), await browser.page("/ws/tester/xss"),
        await browser.page("/accounts/tester"),
    ]  # fmt: skip
    await browser.sign_in(api.token)
    pages += [await browser.page(f"/im/{image['id']}/edit"), await browser.page("/")]
    for page in pages:
        assert "<script>" not in page and "<img" not in page and "<svg" not in page
        assert "onerror=" not in page.replace("onerror=alert(2)&gt;", "")
        assert 'href="javascript:' not in page
        assert page.count("<script") == 1  # beakerd's own, from /static
    image_page = pages[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in image_page
    assert "GREETING=hello&lt;script&gt;" in image_page  # the config's env, escaped


async def test_an_empty_home_page_says_how_to_create_an_image(api: Api) -> None:
    assert "beaker image create" in await Browser(api.client).page("/")
