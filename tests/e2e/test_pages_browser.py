"""The web pages in a real browser: headless Chromium loads `/` and `/im/<id>` from a real beakerd.

The in-process tests (tests/metadata/test_pages.py) check the HTML text; this one checks what a
browser makes of it after scripts had their chance to run: the markdown narrative is rendered,
the HTML injected into it stays inert text, and the page renders (a screenshot is saved).

Chromium is driven over the DevTools protocol with aiohttp's websocket client, so no Python
dependency is added. It needs Debian's `chromium` package; without it the test skips, and under
CI=true it fails.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.tools import require_tool
from tests.metadata.helpers import basic, manifest_bytes
from tests.registry.helpers import OCI_MANIFEST, digest_of
from tests.server import Server

pytestmark = pytest.mark.e2e

# Without the background-networking flags Chromium tries to reach Google and stalls; loopback is
# the only network this test may use, hence also --no-proxy-server.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server", "--hide-scrollbars", "--window-size=1280,900",
]  # fmt: skip
# A guard against a hung browser, not a performance expectation.
STEP_TIMEOUT = 60.0
INJECTED = "<script>document.title='pwned'</script>"
NARRATIVE = f"""# Wordcount narrative

Counts the *words* in its input, one line at a time.

{INJECTED}

<img src=x onerror="document.title='pwned'">
"""


class DevToolsError(RuntimeError):
    pass


class Page:
    """One tab, spoken to over its DevTools websocket: commands in order, events buffered."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._last_id = 0
        self._events: list[dict[str, Any]] = []

    async def _receive(self) -> dict[str, Any]:
        message: dict[str, Any] = await self._ws.receive_json()
        return message

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._last_id += 1
        command_id = self._last_id
        await self._ws.send_json({"id": command_id, "method": method, "params": params})
        async with asyncio.timeout(STEP_TIMEOUT):
            while True:
                message = await self._receive()
                if message.get("id") == command_id:
                    if "error" in message:
                        raise DevToolsError(f"{method}: {message['error']}")
                    result: dict[str, Any] = message.get("result", {})
                    return result
                if "method" in message:
                    self._events.append(message)

    async def wait_for(self, event: str) -> dict[str, Any]:
        async with asyncio.timeout(STEP_TIMEOUT):
            while True:
                for i, message in enumerate(self._events):
                    if message["method"] == event:
                        del self._events[: i + 1]
                        params: dict[str, Any] = message.get("params", {})
                        return params
                self._events.clear()
                message = await self._receive()
                if "method" in message:
                    self._events.append(message)

    async def goto(self, url: str) -> None:
        """Navigate and wait for the load event, by which time any script would have run."""
        self._events.clear()
        navigation = await self.send("Page.navigate", url=url)
        assert "errorText" not in navigation, f"{url}: {navigation['errorText']}"
        await self.wait_for("Page.loadEventFired")

    async def click_and_wait(self, selector: str) -> None:
        self._events.clear()
        clicked = await self.evaluate(
            f"(() => {{ const a = document.querySelector({json.dumps(selector)});"
            " if (!a) return false; a.click(); return true; })()"
        )
        assert clicked, f"nothing matches {selector}"
        await self.wait_for("Page.loadEventFired")

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (DevTools is exempt from its CSP)."""
        answer = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise DevToolsError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def texts(self, selector: str) -> list[str]:
        found = await self.evaluate(
            f"Array.from(document.querySelectorAll({json.dumps(selector)}),"
            " e => e.textContent.trim())"
        )
        return [str(text) for text in found]

    async def screenshot(self, path: Path) -> bytes:
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        png = base64.b64decode(shot["data"])
        await asyncio.to_thread(path.write_bytes, png)
        return png


@contextlib.contextmanager
def running_chromium(workdir: Path) -> Iterator[int]:
    """Headless Chromium with its own profile; yields its DevTools port. Stopped by PID."""
    chromium = require_tool("chromium")
    profile = workdir / "profile"
    profile.mkdir(parents=True)
    log_path = workdir / "chromium.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             "--remote-debugging-port=0", "about:blank"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its helper processes share its process group
        )  # fmt: skip
    try:
        # With port 0, Chromium picks a free port and writes it to DevToolsActivePort.
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + STEP_TIMEOUT
        while not port_file.exists() or not port_file.read_text().strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                # Installed but broken is a broken setup, on a laptop as in CI.
                log_text = log_path.read_text(errors="replace")
                raise RuntimeError(f"chromium did not start:\n{log_text}")
            time.sleep(0.05)
        yield int(port_file.read_text().split()[0])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # leftover renderers of this browser only


@contextlib.asynccontextmanager
async def open_page(port: int) -> AsyncIterator[Page]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
            targets = await resp.json()
        [tab] = [t for t in targets if t["type"] == "page"]
        async with session.ws_connect(tab["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            page = Page(ws)
            await page.send("Page.enable")
            await page.send("Runtime.enable")
            yield page


async def create_committed_image(server: Server, name: str) -> tuple[dict[str, Any], str]:
    """An image made as the Beaker clients make one: create, push with its credentials, commit.

    Returns the committed image and the digest of its one layer.
    """
    api = {"Authorization": f"Bearer {server.password}"}
    async with aiohttp.ClientSession(base_url=server.url) as http:
        body = {
            "workspace": "tester/default", "imageID": "sha256:" + "0" * 64, "imageTag": name,
            "description": "Counts words", "narrative": NARRATIVE,
        }  # fmt: skip
        async with http.post("/api/v3/images", params={"name": name}, json=body, headers=api) as r:
            assert r.status == 200, await r.text()
            image: dict[str, Any] = await r.json()
        url = f"/api/v3/images/{image['id']}/repository"
        async with http.get(url, params={"upload": "true"}, headers=api) as r:
            assert r.status == 200, await r.text()
            auth = (await r.json())["auth"]
        # The minted credential is a password for HTTP Basic on /v2, as `docker login` uses it.
        login = basic(auth["user"], auth["password"])
        repository = str(image["dockerTag"]).split("/", 1)[1]
        config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
        layer = b"wordcount layer\n" * 200
        for blob in (config, layer):
            async with http.post(
                f"/v2/{repository}/blobs/uploads/", params={"digest": digest_of(blob)},
                data=blob, headers=login,
            ) as r:  # fmt: skip
                assert r.status == 201, await r.text()
        async with http.put(
            f"/v2/{repository}/manifests/latest", data=manifest_bytes(config, [layer]),
            headers={"Content-Type": OCI_MANIFEST, **login},
        ) as r:  # fmt: skip
            assert r.status == 201, await r.text()
        async with http.patch(
            f"/api/v3/images/{image['id']}", json={"commit": True}, headers=api
        ) as r:
            assert r.status == 200, await r.text()
            committed: dict[str, Any] = await r.json()
        return committed, digest_of(layer)


async def test_the_pages_render_the_narrative_in_a_browser_and_injected_html_stays_inert(
    fresh_beakerd: Server, tmp_path: Path
) -> None:
    server = fresh_beakerd
    full_name = "tester/wordcount"
    with running_chromium(tmp_path / "chromium") as port:
        image, layer_digest = await create_committed_image(server, "wordcount")
        async with open_page(port) as page:
            await page.goto(server.url + "/")
            assert await page.evaluate("document.title") == "Beaker images"
            assert await page.texts("tbody tr td:first-child") == [full_name]
            assert image["id"] in await page.texts("tbody td code")
            await page.screenshot(tmp_path / "index.png")

            # Follow the link, as a reader would.
            await page.click_and_wait(f'a[href="/im/{image["id"]}"]')
            assert await page.evaluate("location.pathname") == f"/im/{image['id']}"
            assert await page.evaluate("document.title") == full_name  # not 'pwned'
            assert await page.texts("h1") == [full_name, "Wordcount narrative"]
            assert await page.texts(".narrative em") == ["words"]
            # The injected HTML is text on the page, not elements in it.
            assert await page.evaluate("document.querySelectorAll('script').length") == 0
            assert await page.evaluate("document.querySelectorAll('img').length") == 0
            narrative = await page.evaluate("document.querySelector('.narrative').innerText")
            assert INJECTED in narrative
            pull = await page.texts("pre")
            assert pull == [f"beaker image pull {full_name}\ndocker pull {image['dockerTag']}"]
            assert layer_digest in await page.texts("td code")
            assert image["digest"] in await page.texts("td code")

            # For a person to look at: pytest keeps the last few runs' tmp_path folders.
            png = await page.screenshot(tmp_path / "image-page.png")
            assert png.startswith(b"\x89PNG\r\n\x1a\n")
