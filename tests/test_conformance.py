"""beakerd passes the OCI Distribution Spec v1.1 conformance suite (python -m conformance)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from conformance.client import RegistryClient, basic_authorization
from tests.server import Server

REPO_ROOT = Path(__file__).resolve().parent.parent

SEEN = web.AppKey("seen", dict[str, list[str]])


def test_beakerd_passes_every_oci_conformance_check(beakerd_server: Server) -> None:
    cmd = [sys.executable, "-m", "conformance", "--url", beakerd_server.url]
    if beakerd_server.password is not None:
        cmd += ["--username", beakerd_server.username, "--password", beakerd_server.password]
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    output = proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    failures = "\n".join(line for line in lines if line.startswith("FAIL"))
    assert last.endswith(" 0 failed"), (
        f"conformance suite: {last!r}\n\nFailures:\n{failures}\n\nFull output:\n{output}"
    )
    assert proc.returncode == 0, output


# The suite's own client must get through registries that demand credentials; beakerd may not
# challenge at all yet, so these prove the Bearer and Basic paths against small fakes.

TOKEN = "token-for-tester"


def _challenging_registry(scheme: str) -> web.Application:
    seen: dict[str, list[str]] = {"token_requests": []}

    async def token(request: web.Request) -> web.Response:
        seen["token_requests"].append(request.query_string)
        if request.headers.get("Authorization") != basic_authorization("tester", "pw"):
            return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]}, status=401)
        return web.json_response({"token": TOKEN})

    async def v2(request: web.Request) -> web.Response:
        wanted = f"Bearer {TOKEN}" if scheme == "bearer" else basic_authorization("tester", "pw")
        if request.headers.get("Authorization") == wanted:
            return web.json_response({})
        if scheme == "bearer":
            realm = f"http://{request.host}/token"
            challenge = (
                f'Bearer realm="{realm}",service="fake",scope="repository:conformance/x:pull,push"'
            )
        else:
            challenge = 'Basic realm="fake"'
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED"}]},
            status=401,
            headers={"WWW-Authenticate": challenge},
        )

    app = web.Application()
    app[SEEN] = seen
    app.router.add_get("/token", token)
    app.router.add_get("/v2/", v2)
    app.router.add_get("/v2/conformance/x/tags/list", v2)
    return app


@pytest.mark.parametrize("scheme", ["bearer", "basic"])
async def test_suite_client_answers_auth_challenges_with_credentials(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]], scheme: str
) -> None:
    server = await aiohttp_server(_challenging_registry(scheme))
    url = str(server.make_url("")).rstrip("/")
    async with RegistryClient(url, "tester", "pw") as client:
        first = await client.request("GET", "/v2/")
        again = await client.request("GET", "/v2/conformance/x/tags/list")
    assert first.status == 200
    assert again.status == 200
    if scheme == "bearer":
        # The cached token is reused: one token fetch, carrying the challenge's scope.
        requests = server.app[SEEN]["token_requests"]
        assert len(requests) == 1
        assert "scope=repository" in requests[0] and "service=fake" in requests[0]


async def test_suite_client_without_credentials_reports_the_401(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
) -> None:
    server = await aiohttp_server(_challenging_registry("bearer"))
    async with RegistryClient(str(server.make_url("")).rstrip("/")) as client:
        resp = await client.request("GET", "/v2/")
    assert resp.status == 401
