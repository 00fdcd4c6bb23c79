"""The web pages: the image list and an image's page, escaped and under a strict CSP."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from tests.metadata.conftest import config_token, make_app
from tests.metadata.helpers import Api, push_latest, repository_of

CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


async def test_the_index_lists_images_newest_first(api: Api) -> None:
    older = await api.create_image("older")
    newer = await api.create_image("newer")
    resp = await api.client.get("/")
    assert resp.status == 200
    assert resp.headers["Content-Security-Policy"] == CSP
    page = await resp.text()
    assert page.index("tester/newer") < page.index("tester/older")
    assert older["id"] in page and newer["id"] in page


async def test_an_empty_index_says_how_to_create_an_image(api: Api) -> None:
    page = await (await api.client.get("/")).text()
    assert "beaker image create" in page


async def test_the_image_page_shows_pull_commands_layers_and_the_rendered_narrative(
    api: Api,
) -> None:
    image = await api.create_image("shown", narrative="# Usage\n\nRun *it*.")
    await push_latest(api.client, repository_of(image), [b"x" * 3000], api.admin_basic)
    committed = await api.ok("PATCH", f"/images/{image['id']}", json_body={"commit": True})
    resp = await api.client.get(f"/im/{image['id']}")
    assert resp.status == 200
    assert resp.headers["Content-Security-Policy"] == CSP
    page = await resp.text()
    assert "beaker image pull tester/shown" in page
    assert f"docker pull {image['dockerTag']}" in page
    assert committed["digest"] in page
    assert "2.9 KiB" in page  # the layer
    assert "<h1>Usage</h1>" in page and "<em>it</em>" in page


async def test_html_in_the_narrative_and_metadata_is_escaped(api: Api) -> None:
    image = await api.create_image(
        "xss",
        description="<img src=x onerror=alert(1)>",
        narrative="<script>alert(1)</script>\n\n[link](javascript:alert(1))",
    )
    page = await (await api.client.get(f"/im/{image['id']}")).text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<img" not in page
    assert 'href="javascript:' not in page


async def test_an_unknown_image_page_is_404(api: Api) -> None:
    resp = await api.client.get("/im/bp_nope00000000")
    assert resp.status == 404
    assert "bp_nope00000000" in await resp.text()


async def test_every_page_forbids_framing_and_referers_the_404_too(api: Api) -> None:
    image = await api.create_image("framed")
    for path, status in (("/", 200), (f"/im/{image['id']}", 200), ("/im/bp_nope0000", 404)):
        resp = await api.client.get(path)
        assert resp.status == status, path
        assert resp.content_type == "text/html"
        assert resp.headers["Content-Security-Policy"] == CSP, path
        assert resp.headers["X-Frame-Options"] == "DENY", path
        assert resp.headers["Referrer-Policy"] == "no-referrer", path
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path


async def test_the_index_pages_through_older_images(api: Api) -> None:
    from metadata import pages

    for n in range(pages.INDEX_PAGE + 2):
        await api.create_image(f"img{n}")
    first = await (await api.client.get("/")).text()
    assert "tester/img101<" in first and "tester/img1<" not in first
    assert 'href="/?page=2">Older images' in first
    second = await (await api.client.get("/?page=2")).text()
    assert "tester/img1<" in second and "tester/img0<" in second
    assert 'href="/?page=1">Newer images' in second and "Older images" not in second
    assert "tester/img101<" in await (await api.client.get("/?page=bogus")).text()


async def test_a_server_reachable_from_other_machines_shows_only_public_workspaces(
    tmp_path: Path, home: Path
) -> None:
    app = make_app(tmp_path, host="0.0.0.0")
    async with TestClient(TestServer(app)) as client:
        api = Api(client, config_token(home))
        private = await api.create_image("private")
        await api.ok("POST", "/workspaces", json_body={"name": "open", "org": "tester",
                                                        "public": True})  # fmt: skip
        public = await api.create_image("shared", workspace="tester/open")
        index = await (await client.get("/")).text()
        assert "tester/shared" in index and "tester/private" not in index
        assert (await client.get(f"/im/{public['id']}")).status == 200
        assert (await client.get(f"/im/{private['id']}")).status == 404
