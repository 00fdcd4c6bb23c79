"""The web pages in a real browser: Playwright drives Debian's headless Chromium against a real
beakerd, seeded the way the Beaker clients and docker would (create, push, commit).

The in-process tests (tests/metadata/test_web_*.py) check the HTML; these check what a person
gets: signing in and out, searching and paging, an image's config, history and platforms, the
narrative's preview, deleting after a confirmation, forms refused without their CSRF token,
injected HTML that never runs, and private images that stay hidden.

Screenshots of the main pages go to $BEAKERD_SCREENSHOTS (CI sets it to `screenshots/`), else
to the test's temporary folder. Playwright's own browser downloads do not work here: it is
installed with pip and pointed at /usr/bin/chromium. Without chromium the tests skip, and under
CI=true they fail.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.backends.backend import Backend
from tests.e2e.tools import require_tool
from tests.metadata.web_helpers import (
    SIGNATURE_TYPE,
    build_config,
    push_built,
    push_index,
    push_referrer,
)
from tests.registry.helpers import basic
from tests.server import Server, running_beakerd

pytestmark = pytest.mark.e2e

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server",
]  # fmt: skip
# Every script-capable spot of every payload sets the title or opens a dialog if it runs.
XSS = "<script>document.title='pwned'</script><img src=x onerror=\"alert('xss')\">"
NARRATIVE = f"""# Wordcount

Counts the *words* in its input, one line at a time.

| input | words |
|-------|------:|
| `a b` | 2     |

- [x] tokenizer
- [ ] stemming

```sh
beaker image pull tester/wordcount
```

{XSS}

[a link](javascript:alert('xss'))
"""
BATCH = 53  # more than one page of 50


@dataclass
class Site:
    server: Server
    images: dict[str, dict[str, Any]]
    bob_token: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token(self) -> str:
        assert self.server.password is not None
        return self.server.password


async def _create(http: aiohttp.ClientSession, api: dict[str, str], name: str,
                  **body: Any) -> dict[str, Any]:  # fmt: skip
    body = {"workspace": "tester/shared", "imageID": "sha256:" + "0" * 64, "imageTag": name,
            **body}  # fmt: skip
    async with http.post("/api/v3/images", params={"name": name}, json=body, headers=api) as r:
        assert r.status == 200, await r.text()
        image: dict[str, Any] = await r.json()
    return image


async def _push_and_commit(
    http: aiohttp.ClientSession, api: dict[str, str], image: dict[str, Any], *,
    arches: list[str] | None = None, referrer: bool = False,
) -> dict[str, Any]:  # fmt: skip
    url = f"/api/v3/images/{image['id']}/repository"
    async with http.get(url, params={"upload": "true"}, headers=api) as r:
        auth = (await r.json())["auth"]
    login = basic(auth["user"], auth["password"])
    repository = str(image["dockerTag"]).split("/", 1)[1]
    if arches:
        digest = await push_index(http, repository, login, arches)
    else:
        layers = [b"base layer\n" * 3000, b"wordcount binary\n" * 700]
        digest, _ = await push_built(http, repository, login, build_config(marker=XSS), layers)
    if referrer:
        await push_referrer(http, repository, login, digest, SIGNATURE_TYPE)
    async with http.patch(f"/api/v3/images/{image['id']}", json={"commit": True},
                          headers=api) as r:  # fmt: skip
        assert r.status == 200, await r.text()
        committed: dict[str, Any] = await r.json()
    return committed


async def _seed(server: Server) -> dict[str, dict[str, Any]]:
    api = {"Authorization": f"Bearer {server.password}"}
    images: dict[str, dict[str, Any]] = {}
    async with aiohttp.ClientSession(base_url=server.url) as http:
        spec = {"name": "shared", "org": "tester", "public": True,
                "description": "Images everyone may pull"}  # fmt: skip
        async with http.post("/api/v3/workspaces", json=spec, headers=api) as r:
            assert r.status == 200, await r.text()
        for n in range(BATCH):
            await _create(http, api, f"batch-{n:02}", description=f"batch image {n}")
        wordcount = await _create(http, api, "wordcount", description="Counts words " + XSS,
                                  narrative=NARRATIVE)  # fmt: skip
        images["wordcount"] = await _push_and_commit(http, api, wordcount)
        multi = await _create(http, api, "multiarch", description="Runs on amd64 and arm64")
        images["multiarch"] = await _push_and_commit(
            http, api, multi, arches=["amd64", "arm64"], referrer=True
        )
        secret = await _create(http, api, "secret", workspace="tester/default",
                               description="private notes")  # fmt: skip
        images["secret"] = await _push_and_commit(http, api, secret)
    return images


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, session_backend: Backend) -> Iterator[Site]:
    """One seeded server per backend: the pages read what PostgreSQL and S3 hold as they read
    SQLite and the data folder."""
    with running_beakerd(tmp_path_factory.mktemp("web"), session_backend.args()) as server:
        # In a thread of its own: the test plugins may keep an event loop running here.
        with ThreadPoolExecutor(1) as thread:
            images = thread.submit(asyncio.run, _seed(server)).result()
        added = subprocess.run(
            [sys.executable, "-m", "beakerd", "account", "add", "bob", *server.store_args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        bob_token = added.stdout.split("API token: ")[1].split()[0]
        yield Site(server, images, bob_token)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    executable = require_tool("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Visitor:
    """One browser profile (its own cookies), with what the tests watch for on its pages."""

    context: BrowserContext
    page: Page
    dialogs: list[str]
    site: Site

    def go(self, path: str) -> None:
        self.page.goto(self.site.url + path)

    def sign_in(self, token: str) -> None:
        self.go("/")
        self.page.locator("header.site").get_by_role("link", name="Sign in").click()
        self.page.get_by_label("API token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.get_by_role("button", name="Sign out")).to_be_visible()


@pytest.fixture
def visitor(chromium: Browser, site: Site) -> Iterator[Visitor]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)  # a guard against a hung browser, not an expectation
    page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        yield Visitor(context, page, dialogs, site)
    finally:
        context.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("BEAKERD_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _rows(page: Page) -> list[str]:
    return page.locator("a.image-name").all_inner_texts()


def test_sign_in_and_sign_out(visitor: Visitor, site: Site) -> None:
    page = visitor.page
    visitor.sign_in(site.token)
    expect(page.locator("header .me")).to_have_text("tester")
    # The session cookie is HttpOnly: no script on the page can read it.
    assert "beakerd_session" not in page.evaluate("document.cookie")
    [cookie] = [c for c in visitor.context.cookies() if c["name"] == "beakerd_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("header.site").get_by_role("link", name="Sign in")).to_be_visible()
    assert not [c for c in visitor.context.cookies() if c["name"] == "beakerd_session"]


def test_search_paging_and_the_keyboard(visitor: Visitor, screenshots: Path) -> None:
    page = visitor.page
    visitor.go("/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.get_by_label("Search").fill("batch")
    page.get_by_label("Search").press("Enter")
    page.wait_for_url(re.compile(r"q=batch"))
    assert len(_rows(page)) == 50
    page.get_by_role("link", name="Next page →").click()
    assert _rows(page) == ["tester/batch-02", "tester/batch-01", "tester/batch-00"]
    page.get_by_role("link", name="← Newer page").click()
    # Sorting by name keeps the search.
    page.get_by_role("link", name="Name").click()
    assert _rows(page)[:2] == ["tester/batch-00", "tester/batch-01"]
    assert "q=batch" in page.url
    visitor.go("/?q=words")
    assert _rows(page) == ["tester/wordcount"]
    visitor.go("/")
    page.screenshot(path=screenshots / "home.png", full_page=False)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=screenshots / "home-phone.png", full_page=False)
    # Nothing overflows a phone's width.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_the_workspace_and_image_pages_show_config_history_and_platforms(
    visitor: Visitor, site: Site, screenshots: Path
) -> None:
    page = visitor.page
    visitor.go("/workspaces")
    page.get_by_role("link", name="tester/shared").click()
    expect(page.locator("h1").first).to_contain_text("tester/shared")
    expect(page.locator("h1 .badge")).to_have_text("public")
    page.screenshot(path=screenshots / "workspace.png")

    page.get_by_role("link", name="tester/wordcount").click()
    narrative = page.locator("article.narrative")
    expect(narrative.locator("h1")).to_have_text("Wordcount")
    expect(narrative.locator("table td").first).to_have_text("a b")
    assert narrative.locator("input[type=checkbox]:checked").count() == 1
    expect(narrative.locator("pre code")).to_have_text("beaker image pull tester/wordcount\n")
    inside = page.locator("details.platform")
    expect(inside.locator("h3")).to_have_text("linux/amd64")
    expect(inside).to_contain_text("/usr/bin/wordcount")
    expect(inside).to_contain_text("/srv/wordcount")
    expect(inside).to_contain_text("8080/tcp")
    history = inside.locator("table.history tbody tr")
    assert history.count() == 4
    expect(history.nth(1)).to_contain_text("no layer")
    expect(page.locator("#pull ~ .command pre").first).to_have_text(
        "beaker image pull tester/wordcount"
    )
    page.set_viewport_size({"width": 1280, "height": 1800})
    page.screenshot(path=screenshots / "image.png", full_page=True)

    visitor.go(f"/im/{site.images['multiarch']['id']}")
    assert page.locator("details.platform h3").all_inner_texts() == ["linux/amd64", "linux/arm64"]
    expect(page.locator("table.referrers")).to_contain_text(SIGNATURE_TYPE)
    page.screenshot(path=screenshots / "image-multiplatform.png", full_page=True)
    dark = visitor.context.browser
    assert dark is not None
    night = dark.new_context(color_scheme="dark", viewport={"width": 1280, "height": 1000})
    try:
        night_page = night.new_page()
        night_page.goto(site.url + f"/im/{site.images['wordcount']['id']}")
        background = night_page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(13, 17, 23)"
        night_page.screenshot(path=screenshots / "image-dark.png")
    finally:
        night.close()


# Every visible text on the page whose contrast with the background behind it is under WCAG's
# AA level for body text (4.5:1): "tag.class ratio text" for each.
_LOW_CONTRAST = """() => {
  const rgba = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const [r, g, b, a] = m[1].split(",").map(Number);
    return {r, g, b, a: a === undefined ? 1 : a};
  };
  const channel = (v) => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const behind = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0.5) return c;
    }
    return rgba(getComputedStyle(document.documentElement).backgroundColor);
  };
  const low = [];
  const seen = new Set();
  const texts = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (texts.nextNode()) {
    const el = texts.currentNode.parentElement;
    if (!texts.currentNode.textContent.trim() || seen.has(el)) continue;
    seen.add(el);
    if (el.closest(".visually-hidden") || el.getClientRects().length === 0) continue;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden") continue;
    const [fg, bg] = [luminance(rgba(style.color)), luminance(behind(el))];
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    if (ratio < 4.5) {
      const text = texts.currentNode.textContent.trim().slice(0, 30);
      low.push(`${el.tagName.toLowerCase()}.${el.className} ${ratio.toFixed(2)} ${text}`);
    }
  }
  return low;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_text_is_readable_against_its_background(
    chromium: Browser, site: Site, scheme: str
) -> None:
    context = chromium.new_context(color_scheme=scheme, viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        visitor = Visitor(context, page, [], site)
        visitor.sign_in(site.token)  # signed in, the pages show their forms and buttons too
        wordcount = site.images["wordcount"]["id"]
        for path in ("/", "/workspaces", "/ws/tester/shared", "/accounts/tester", "/registry",
                     f"/im/{wordcount}", f"/im/{wordcount}/edit", f"/im/{wordcount}/delete",
                     f"/im/{site.images['multiarch']['id']}"):  # fmt: skip
            visitor.go(path)
            for details in page.locator("details").all():
                details.evaluate("d => { d.open = true; }")
            assert page.evaluate(_LOW_CONTRAST) == [], path
    finally:
        context.close()


def test_copy_buttons_copy_the_pull_commands(visitor: Visitor, site: Site) -> None:
    visitor.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    page = visitor.page
    visitor.go(f"/im/{site.images['wordcount']['id']}")
    page.get_by_role("button", name="Copy the docker command").click()
    expect(page.get_by_role("button", name="Copy the docker command")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == f"docker pull {site.images['wordcount']['dockerTag']}"


def test_editing_the_narrative_with_a_preview(
    visitor: Visitor, site: Site, screenshots: Path
) -> None:
    page = visitor.page
    visitor.sign_in(site.token)
    image_id = site.images["multiarch"]["id"]
    visitor.go(f"/im/{image_id}")
    page.get_by_role("link", name="Edit").click()
    text = "## Platforms\n\n| arch | ok |\n|---|---|\n| arm64 | yes |\n\n" + XSS
    page.get_by_label("Narrative (markdown)").fill(text)
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview")
    expect(preview.locator("h2")).to_have_text("Platforms")
    expect(preview.locator("td").first).to_have_text("arm64")
    # Shown by the script, without leaving the page or losing the text.
    assert page.url.endswith(f"/im/{image_id}/edit")
    assert page.get_by_label("Narrative (markdown)").input_value() == text
    page.screenshot(path=screenshots / "edit-preview.png", full_page=True)
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(site.url + f"/im/{image_id}")
    expect(page.locator("article.narrative h2")).to_have_text("Platforms")
    assert page.title() != "pwned" and visitor.dialogs == []


def test_delete_asks_for_confirmation(visitor: Visitor, site: Site) -> None:
    page = visitor.page
    visitor.sign_in(site.token)
    visitor.go("/?q=batch-52")
    page.get_by_role("link", name="tester/batch-52").click()
    page.get_by_role("link", name="Delete").click()
    expect(page.locator("h1").first).to_have_text("Delete tester/batch-52?")
    page.get_by_role("link", name="Cancel").click()
    expect(page.locator("h1").first).to_have_text("tester/batch-52")
    page.get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete image").click()
    page.wait_for_url(site.url + "/accounts/tester")
    visitor.go("/?q=batch-52")
    assert _rows(page) == []


def test_a_post_without_the_csrf_token_is_refused(visitor: Visitor, site: Site) -> None:
    page = visitor.page
    visitor.sign_in(site.token)
    image = site.images["wordcount"]
    visitor.go(f"/im/{image['id']}")
    status = page.evaluate(
        """async (path) => {
            const body = new URLSearchParams({name: "renamed", description: "", narrative: ""});
            const response = await fetch(path, {method: "POST", body});
            return response.status;
        }""",
        f"/im/{image['id']}/edit",
    )
    assert status == 403
    page.reload()
    expect(page.locator("h1").first).to_have_text("tester/wordcount")


def test_injected_html_never_runs(visitor: Visitor, site: Site) -> None:
    page = visitor.page
    paths = [f"/im/{site.images['wordcount']['id']}", "/?q=" + XSS, "/ws/tester/shared",
             "/accounts/tester"]  # fmt: skip
    for path in paths:
        visitor.go(path)
        assert page.title() != "pwned", path
        assert page.locator("main script, main img").count() == 0, path
    visitor.go(f"/im/{site.images['wordcount']['id']}")
    expect(page.locator("article.narrative")).to_contain_text(XSS)
    expect(page.locator(".lead")).to_have_text("Counts words " + XSS)
    assert page.locator("a[href^='javascript:']").count() == 0
    assert visitor.dialogs == []


def test_a_private_image_is_hidden_from_anonymous_visitors_and_other_accounts(
    visitor: Visitor, site: Site
) -> None:
    page = visitor.page
    secret = site.images["secret"]["id"]
    for signed_in in (False, True):
        if signed_in:
            visitor.sign_in(site.bob_token)
        visitor.go("/?q=secret")
        assert _rows(page) == []
        response = page.goto(site.url + f"/im/{secret}")
        assert response is not None and response.status == 404
        expect(page.locator("h1").first).to_have_text("Not found")
    visitor.go("/")
    page.get_by_role("button", name="Sign out").click()
    visitor.sign_in(site.token)
    visitor.go(f"/im/{secret}")
    expect(page.locator("h1").first).to_have_text("tester/secret")
