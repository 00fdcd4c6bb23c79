"""Signing in to the web pages with an API token, signing out, and the CSRF rule."""

from __future__ import annotations

from pathlib import Path

from multidict import CIMultiDictProxy

from beakerd.app import create_app
from beakerd.settings import Settings
from metadata.accounts import list_tokens, revoke_token
from metadata.web.visits import WEB
from tests.metadata.helpers import Api
from tests.metadata.web_helpers import Browser


def _cookie_header(resp_headers: CIMultiDictProxy[str], name: str) -> str:
    headers = [h for h in resp_headers.getall("Set-Cookie", []) if h.startswith(name + "=")]
    assert len(headers) == 1, headers
    return headers[0]


async def test_signing_in_sets_a_strict_httponly_cookie_holding_a_server_side_session(
    api: Api,
) -> None:
    browser = Browser(api.client)
    await browser.get("/signin")
    resp = await api.client.post(
        "/signin", data={"csrf": browser.csrf(), "token": api.token, "next": "/workspaces"},
        allow_redirects=False,
    )  # fmt: skip
    assert resp.status == 303 and resp.headers["Location"] == "/workspaces"
    cookie = _cookie_header(resp.headers, "beakerd_session")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    secret = cookie.split(";")[0].split("=", 1)[1]
    # The row holds the sha256 of the cookie's value, never the value, nor the API token.
    rows = await api.db.fetchall("SELECT id_sha256, csrf_token FROM web_sessions")
    assert len(rows) == 1 and rows[0]["id_sha256"] != secret and secret not in str(rows[0])
    page = await browser.page("/")
    assert "Sign out" in page and api.token not in page


async def test_a_wrong_token_is_refused_and_no_session_is_made(api: Api) -> None:
    browser = Browser(api.client)
    status, text, _ = await browser.post(
        "/signin", {"token": "bk_not-a-token", "next": "/"}, csrf_from="/signin"
    )
    assert status == 401 and "not a valid API token" in text
    assert await api.db.fetchall("SELECT 1 FROM web_sessions") == []
    assert "Sign out" not in await browser.page("/")


async def test_signing_out_ends_the_session_on_the_server(api: Api) -> None:
    browser = Browser(api.client)
    await browser.sign_in(api.token)
    cookie = api.client.session.cookie_jar.filter_cookies(api.client.make_url("/"))
    secret = cookie["beakerd_session"].value
    await browser.sign_out()
    assert await api.db.fetchall("SELECT 1 FROM web_sessions") == []
    # Replaying the old cookie gets nothing: the session is gone, not just the cookie.
    resp = await api.client.get("/registry", cookies={"beakerd_session": secret},
                                allow_redirects=False)  # fmt: skip
    assert resp.status == 303 and resp.headers["Location"].startswith("/signin")


async def test_revoking_the_api_token_ends_its_sessions(api: Api) -> None:
    _, token = await api.new_account("revoked")
    browser = Browser(api.client)
    await browser.sign_in(token)
    assert "Sign out" in await browser.page("/")
    [info] = await list_tokens(api.db, "revoked")
    assert await revoke_token(api.db, info.id)
    resp = await api.client.get("/", allow_redirects=False)
    assert "Sign out" not in await resp.text()
    # The dead cookie is dropped.
    assert "beakerd_session=;" in _cookie_header(resp.headers, "beakerd_session").replace('""', "")


async def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(api: Api) -> None:
    image = await api.create_image("guarded", description="before")
    browser = Browser(api.client)
    await browser.sign_in(api.token)
    posts = {
        f"/im/{image['id']}/edit": {"name": "guarded", "description": "after", "narrative": ""},
        f"/im/{image['id']}/delete": {"confirm": image["id"]},
        f"/im/{image['id']}/commit": {},
        "/signout": {},
        "/registry/delete-tag": {"repository": "tester/x", "tag": "latest"},
    }
    for path, form in posts.items():
        for csrf in (None, "forged"):
            data = form if csrf is None else {"csrf": csrf, **form}
            status, text, _ = await browser.post(path, data, with_csrf=False)
            assert status == 403 and "security token" in text, (path, csrf)
    after = await api.ok("GET", f"/images/{image['id']}")
    assert after["description"] == "before"
    assert "Sign out" in await browser.page("/")  # still signed in


async def test_sign_in_itself_needs_the_forms_double_submit_token(api: Api) -> None:
    browser = Browser(api.client)
    # A cross-site form cannot know the cookie's value (nor make the browser send the cookie).
    status, _, _ = await browser.post("/signin", {"token": api.token, "next": "/"}, with_csrf=False)
    assert status == 403
    await browser.get("/signin")
    status, _, _ = await browser.post("/signin", {"csrf": "guess", "token": api.token,
                                                  "next": "/"}, with_csrf=False)  # fmt: skip
    assert status == 403
    assert await api.db.fetchall("SELECT 1 FROM web_sessions") == []


async def test_sign_in_goes_back_only_to_pages_of_this_site(api: Api) -> None:
    browser = Browser(api.client)
    for target, expected in (("/ws/tester/default", "/ws/tester/default"),
                             ("//evil.example/", "/"), ("https://evil.example/", "/"),
                             ("/\\evil.example", "/")):  # fmt: skip
        browser.forget()
        status, _, location = await browser.post(
            "/signin", {"token": api.token, "next": target}, csrf_from="/signin"
        )
        assert status == 303 and location == expected, target


async def test_pages_for_signed_in_visitors_send_others_to_sign_in_and_back(api: Api) -> None:
    image = await api.create_image("for-owner")
    browser = Browser(api.client)
    for path in ("/registry", f"/im/{image['id']}/edit", f"/im/{image['id']}/delete"):
        resp = await api.client.get(path, allow_redirects=False)
        assert resp.status == 303, path
        assert resp.headers["Location"].startswith("/signin?next=%2F"), path
    page = await browser.page("/signin?next=/registry")
    assert 'name="next" value="/registry"' in page


def test_cookies_are_secure_under_tls(tmp_path: Path) -> None:
    plain = create_app(Settings(data_dir=tmp_path / "plain"))
    assert not plain[WEB].settings.secure_cookies
    tls = create_app(Settings(data_dir=tmp_path / "tls", tls_auto=True))
    assert tls[WEB].settings.secure_cookies
