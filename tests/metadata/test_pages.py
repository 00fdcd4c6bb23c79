"""The web pages: the image list and an image's page, escaped and under a strict CSP."""

from __future__ import annotations

from tests.metadata.helpers import Api, push_latest, repository_of

CSP = "default-src 'none'; style-src 'unsafe-inline'"


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
