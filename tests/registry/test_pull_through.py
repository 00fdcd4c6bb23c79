"""The pull-through cache in-process, against real upstreams on loopback: the reference
registry (whose access log tells how often the cache went upstream) and a beakerd with auth on.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from beakerd.app import BLOB_BACKEND, DATABASE, SETTINGS, create_app, repository_owners
from beakerd.settings import Settings
from registry.context import REGISTRY
from registry.upstreams import Upstream
from storage import fill_claims
from storage.gc import GarbageCollector, GcPolicy
from tests.backends.backend import Backend
from tests.e2e.conftest import ReferenceRegistry, running_reference_registry
from tests.e2e.tools import require_tool
from tests.registry.conftest import ADMIN
from tests.registry.helpers import (
    OCI_INDEX,
    OCI_MANIFEST,
    basic,
    digest_of,
    error_code,
    push_blob,
    push_image,
)
from tests.server import running_beakerd

Client = TestClient[Any, Any]
MakeCache = Callable[..., Awaitable[Client]]


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[ReferenceRegistry]:
    require_tool("docker-registry")
    folder = tmp_path / "upstream"
    folder.mkdir()
    with running_reference_registry(folder, access_log=True) as registry:
        yield registry


@pytest.fixture
async def upstream_client(upstream: ReferenceRegistry) -> AsyncIterator[TwoStepUploads]:
    async with aiohttp.ClientSession(base_url=upstream.url) as session:
        yield TwoStepUploads(session)


@pytest.fixture
async def make_cache(
    tmp_path: Path, private_home: Path, backend: Backend
) -> AsyncIterator[MakeCache]:
    """A beakerd pulling through `upstreams`, as its admin (or anonymous, `login=False`)."""
    clients: list[Client] = []

    async def make(*upstreams: dict[str, Any], login: bool = True, **settings: Any) -> Client:
        database = backend.settings()
        app = create_app(
            Settings(
                data_dir=tmp_path / f"cache{len(clients)}",
                bootstrap_account=ADMIN,
                upstreams=list(upstreams),
                **database,
                **settings,
            )
        )
        server = TestServer(app)
        await server.start_server()
        config = yaml.safe_load((private_home / ".beaker" / "config.yml").read_text())
        headers = basic(ADMIN, config["user_token"]) if login else {}
        client: Client = TestClient(server, headers=headers)
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


class TwoStepUploads:
    """An aiohttp session to the reference registry, which takes no monolithic POST: blob
    pushes become POST then PUT, as docker sends them."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    def post(self, path: str, params: dict[str, str], data: bytes) -> Any:
        return self._upload(path, params["digest"], data)

    async def _upload(self, path: str, digest: str, data: bytes) -> aiohttp.ClientResponse:
        started = await self.session.post(path)
        assert started.status == 202, await started.text()
        return await self.session.put(
            started.headers["Location"], params={"digest": digest}, data=data
        )

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.session.put(path, **kwargs)


def hub(registry: ReferenceRegistry, **extra: Any) -> dict[str, Any]:
    return {"name": "hub", "url": registry.url, **extra}


def upstream_requests(registry: ReferenceRegistry, method: str, path_part: str) -> int:
    """How many `method` requests whose path contains `path_part` the upstream answered."""
    pattern = re.compile(rf'"{method} (\S*)')
    return sum(
        1
        for match in pattern.finditer(registry.log_path.read_text(errors="replace"))
        if path_part in match[1]
    )


async def wait_for_log(registry: ReferenceRegistry, method: str, path_part: str) -> int:
    """The access log is written after the response: give it a moment to show up."""
    for _ in range(100):
        count = upstream_requests(registry, method, path_part)
        if count:
            return count
        await asyncio.sleep(0.02)
    return 0


async def test_a_pull_by_tag_is_fetched_once_then_served_from_the_cache(
    make_cache: MakeCache, upstream: ReferenceRegistry, upstream_client: Any
) -> None:
    layer = os.urandom(300_000)
    digest, body = await push_image(upstream_client, "library/alpine", "3.20", [layer])
    cache = await make_cache(hub(upstream))

    for _ in range(2):
        resp = await cache.get(
            "/v2/hub/library/alpine/manifests/3.20", headers={"Accept": OCI_MANIFEST}
        )
        assert resp.status == 200, await resp.text()
        assert await resp.read() == body
        assert resp.headers["Docker-Content-Digest"] == digest
        assert "Warning" not in resp.headers
        blob = await cache.get(f"/v2/hub/library/alpine/blobs/{digest_of(layer)}")
        assert blob.status == 200
        assert await blob.read() == layer

    assert await wait_for_log(upstream, "GET", f"/blobs/{digest_of(layer)}") == 1
    # Within the tag's TTL the second pull asked the upstream nothing at all.
    assert upstream_requests(upstream, "GET", "/manifests/3.20") == 1
    assert upstream_requests(upstream, "HEAD", "/manifests/3.20") == 0
    by_digest = await cache.get(
        f"/v2/hub/library/alpine/manifests/{digest}", headers={"Accept": OCI_MANIFEST}
    )
    assert await by_digest.read() == body
    assert upstream_requests(upstream, "GET", f"/manifests/{digest}") == 0


async def test_concurrent_misses_for_one_blob_cause_one_upstream_fetch(
    make_cache: MakeCache, upstream: ReferenceRegistry, upstream_client: Any
) -> None:
    layer = os.urandom(6 << 20)
    await push_image(upstream_client, "big", "v1", [layer])
    cache = await make_cache(hub(upstream))
    manifest = await cache.get("/v2/hub/big/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert manifest.status == 200

    async def pull() -> bytes:
        resp = await cache.get(f"/v2/hub/big/blobs/{digest_of(layer)}")
        assert resp.status == 200
        return await resp.read()

    bodies = await asyncio.gather(*(pull() for _ in range(5)))

    assert all(body == layer for body in bodies)
    assert await wait_for_log(upstream, "GET", f"/blobs/{digest_of(layer)}") == 1


async def test_a_fetch_claim_whose_owner_died_is_taken_over(
    make_cache: MakeCache, upstream: ReferenceRegistry, upstream_client: Any
) -> None:
    layer = os.urandom(1 << 20)
    await push_image(upstream_client, "claimed", "v1", [layer])
    cache = await make_cache(hub(upstream))
    manifest = await cache.get("/v2/hub/claimed/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert manifest.status == 200
    db = cache.server.app[DATABASE]
    # Another replica claimed the blob's fetch: while the claim lives, this one only waits.
    await db.execute(
        "INSERT INTO blob_fill_claims (digest, owner, expires_at) VALUES (?, ?, ?)",
        (digest_of(layer), "elsewhere:1:dead", time.time() + 3600),
    )
    pull = asyncio.ensure_future(cache.get(f"/v2/hub/claimed/blobs/{digest_of(layer)}"))
    await asyncio.sleep(1.0)
    assert not pull.done()
    assert upstream_requests(upstream, "GET", f"/blobs/{digest_of(layer)}") == 0
    # That replica was killed: no heartbeat pushes the claim back, and it runs out.
    await db.execute("UPDATE blob_fill_claims SET expires_at = ?", (time.time() - 1,))

    resp = await pull
    assert resp.status == 200
    assert await resp.read() == layer
    assert await wait_for_log(upstream, "GET", f"/blobs/{digest_of(layer)}") == 1
    for _ in range(100):  # let go once the fetch's task ends, just after the last byte
        if not await db.fetchall("SELECT digest FROM blob_fill_claims"):
            break
        await asyncio.sleep(0.02)
    assert await db.fetchall("SELECT digest FROM blob_fill_claims") == []


async def test_a_range_request_on_a_miss_is_answered_once_the_blob_is_stored(
    make_cache: MakeCache, upstream: ReferenceRegistry, upstream_client: Any
) -> None:
    layer = os.urandom(100_000)
    await push_image(upstream_client, "ranged", "v1", [layer])
    cache = await make_cache(hub(upstream))
    await cache.get("/v2/hub/ranged/manifests/v1", headers={"Accept": OCI_MANIFEST})

    resp = await cache.get(
        f"/v2/hub/ranged/blobs/{digest_of(layer)}", headers={"Range": "bytes=10-19"}
    )

    assert resp.status == 206
    assert await resp.read() == layer[10:20]


async def test_a_tag_is_rechecked_after_its_ttl_and_follows_the_upstream(
    make_cache: MakeCache, upstream: ReferenceRegistry, upstream_client: Any
) -> None:
    first, _ = await push_image(upstream_client, "moving", "latest", [os.urandom(1000)])
    cache = await make_cache(hub(upstream, tag_ttl_seconds=0))
    accept = {"Accept": OCI_MANIFEST}
    resp = await cache.get("/v2/hub/moving/manifests/latest", headers=accept)
    assert resp.headers["Docker-Content-Digest"] == first

    again = await cache.get("/v2/hub/moving/manifests/latest", headers=accept)
    assert again.headers["Docker-Content-Digest"] == first
    assert await wait_for_log(upstream, "HEAD", "/manifests/latest") == 1
    assert upstream_requests(upstream, "GET", "/manifests/latest") == 1

    second, body = await push_image(upstream_client, "moving", "latest", [os.urandom(1000)])
    moved = await cache.get("/v2/hub/moving/manifests/latest", headers=accept)
    assert moved.headers["Docker-Content-Digest"] == second
    assert await moved.read() == body


async def test_a_cached_tag_is_served_stale_with_a_warning_while_the_upstream_is_down(
    make_cache: MakeCache,
    upstream: ReferenceRegistry,
    upstream_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    layer = os.urandom(5000)
    digest, body = await push_image(upstream_client, "steady", "v1", [layer])
    await push_image(upstream_client, "steady", "never-pulled", [os.urandom(10)])
    cache = await make_cache(hub(upstream, tag_ttl_seconds=0))
    accept = {"Accept": OCI_MANIFEST}
    await cache.get("/v2/hub/steady/manifests/v1", headers=accept)
    await (await cache.get(f"/v2/hub/steady/blobs/{digest_of(layer)}")).read()

    upstream.proc.terminate()
    upstream.proc.wait()

    stale = await cache.get("/v2/hub/steady/manifests/v1", headers=accept)
    assert stale.status == 200
    assert await stale.read() == body
    assert stale.headers["Warning"].startswith("110 ")
    assert "upstream hub is unavailable" in caplog.text
    blob = await cache.get(f"/v2/hub/steady/blobs/{digest_of(layer)}")
    assert await blob.read() == layer
    missing = await cache.get("/v2/hub/steady/manifests/never-pulled", headers=accept)
    assert missing.status == 503
    assert await error_code(missing) == "MANIFEST_UNKNOWN"
    digest_pull = await cache.get(f"/v2/hub/steady/manifests/{digest}", headers=accept)
    assert digest_pull.status == 200  # by digest: cached for good, the upstream never asked


async def test_only_the_platforms_clients_ask_for_are_fetched(
    make_cache: MakeCache, upstream: ReferenceRegistry, upstream_client: Any
) -> None:
    amd64_layer, arm64_layer = os.urandom(2000), os.urandom(2000)
    amd64, amd64_body = await push_image(upstream_client, "multi", None, [amd64_layer])
    arm64, arm64_body = await push_image(upstream_client, "multi", None, [arm64_layer])
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": amd64, "size": len(amd64_body),
                 "platform": {"architecture": "amd64", "os": "linux"}},
                {"mediaType": OCI_MANIFEST, "digest": arm64, "size": len(arm64_body),
                 "platform": {"architecture": "arm64", "os": "linux"}},
            ],
        }
    ).encode()  # fmt: skip
    put = await upstream_client.put(
        "/v2/multi/manifests/v1", data=index, headers={"Content-Type": OCI_INDEX}
    )
    assert put.status == 201
    cache = await make_cache(hub(upstream))
    accept = {"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"}

    got = await cache.get("/v2/hub/multi/manifests/v1", headers=accept)
    assert await got.read() == index
    child = await cache.get(f"/v2/hub/multi/manifests/{amd64}", headers=accept)
    assert await child.read() == amd64_body
    await (await cache.get(f"/v2/hub/multi/blobs/{digest_of(amd64_layer)}")).read()

    assert await wait_for_log(upstream, "GET", f"/blobs/{digest_of(amd64_layer)}") == 1
    assert upstream_requests(upstream, "GET", f"/manifests/{arm64}") == 0
    assert upstream_requests(upstream, "GET", f"/blobs/{digest_of(arm64_layer)}") == 0


async def test_cached_repositories_refuse_pushes_and_deletes(
    make_cache: MakeCache, upstream: ReferenceRegistry, upstream_client: Any
) -> None:
    digest, body = await push_image(upstream_client, "locked", "v1", [b"layer"])
    cache = await make_cache(hub(upstream))
    await cache.get("/v2/hub/locked/manifests/v1", headers={"Accept": OCI_MANIFEST})

    attempts = [
        cache.post("/v2/hub/locked/blobs/uploads/"),
        cache.post("/v2/hub/new/blobs/uploads/", params={"digest": digest_of(b"x")}, data=b"x"),
        cache.put("/v2/hub/locked/manifests/v2", data=body,
                  headers={"Content-Type": OCI_MANIFEST}),
        cache.delete(f"/v2/hub/locked/manifests/{digest}"),
        cache.delete("/v2/hub/locked/manifests/v1"),
        cache.delete(f"/v2/hub/locked/blobs/{digest_of(b'layer')}"),
    ]  # fmt: skip
    for attempt in attempts:
        resp = await attempt
        assert resp.status == 405
        assert await error_code(resp) == "UNSUPPORTED"
    still = await cache.get("/v2/hub/locked/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert still.status == 200


async def test_what_the_upstream_lacks_is_unknown(
    make_cache: MakeCache, upstream: ReferenceRegistry
) -> None:
    cache = await make_cache(hub(upstream))

    manifest = await cache.get("/v2/hub/nothing/manifests/v1", headers={"Accept": OCI_MANIFEST})
    blob = await cache.get(f"/v2/hub/nothing/blobs/{digest_of(b'nope')}")
    head = await cache.head(f"/v2/hub/nothing/blobs/{digest_of(b'nope')}")

    assert manifest.status == 404
    assert await error_code(manifest) == "MANIFEST_UNKNOWN"
    assert blob.status == 404
    assert await error_code(blob) == "BLOB_UNKNOWN"
    assert head.status == 404


async def test_a_blob_stored_for_a_private_repository_is_not_served_under_a_cache_name(
    make_cache: MakeCache, upstream: ReferenceRegistry
) -> None:
    cache = await make_cache(hub(upstream))
    secret = os.urandom(1000)
    await push_blob(cache, f"{ADMIN}/private", secret)

    resp = await cache.get(f"/v2/hub/anything/blobs/{digest_of(secret)}")

    assert resp.status == 404
    assert await error_code(resp) == "BLOB_UNKNOWN"


async def test_unused_entries_age_out_and_their_blobs_go_with_gc(
    make_cache: MakeCache, upstream: ReferenceRegistry, upstream_client: Any
) -> None:
    layer = os.urandom(4000)
    _, body = await push_image(upstream_client, "old", "v1", [layer])
    cache = await make_cache(hub(upstream))
    accept = {"Accept": OCI_MANIFEST}
    await cache.get("/v2/hub/old/manifests/v1", headers=accept)
    await (await cache.get(f"/v2/hub/old/blobs/{digest_of(layer)}")).read()
    app = cache.server.app
    ctx = app[REGISTRY]
    assert ctx.proxy is not None
    db, settings, blobs = app[DATABASE], app[SETTINGS], app[BLOB_BACKEND]
    collector = GarbageCollector(
        db, blobs.root, GcPolicy(grace_seconds=0), ctx.changed,
        repository_owners(db, settings), blobs.reclaimer,
    )  # fmt: skip
    # A collection keeps cached content like any other: the tag holds it.
    await collector.collect()
    assert await ctx.repositories.blob_size(digest_of(layer)) is not None

    assert await ctx.proxy.expire(-1) == 2  # the tag and the manifest
    await ctx.changed()
    report = await collector.collect()

    assert report.blobs == 1  # the layer (the config was never asked for)
    assert await ctx.repositories.blob_size(digest_of(layer)) is None
    again = await cache.get("/v2/hub/old/manifests/v1", headers=accept)
    assert await again.read() == body
    blob = await cache.get(f"/v2/hub/old/blobs/{digest_of(layer)}")
    assert await blob.read() == layer


async def test_anonymous_callers_pull_through_only_when_anonymous_pulls_are_on(
    make_cache: MakeCache, upstream: ReferenceRegistry, upstream_client: Any, tmp_path: Path
) -> None:
    await push_image(upstream_client, "open", "v1", [b"abc"])
    closed = await make_cache(hub(upstream), login=False)
    refused = await closed.get("/v2/hub/open/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert refused.status == 401
    await closed.close()

    opened = await make_cache(hub(upstream), login=False, anonymous_pull=True)
    allowed = await opened.get("/v2/hub/open/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert allowed.status == 200


async def test_an_upstream_with_auth_is_pulled_through_its_token_flow(
    make_cache: MakeCache, tmp_path: Path, backend: Backend
) -> None:
    database = backend.args()
    with running_beakerd(tmp_path / "upstream-beakerd", database) as server:
        assert server.password is not None
        login = basic(server.username, server.password)
        layer = os.urandom(3000)
        async with aiohttp.ClientSession(base_url=server.url, headers=login) as session:
            _, body = await push_image(session, f"{server.username}/app", "v1", [layer])
        cache = await make_cache(
            {"name": "team", "url": server.url, "username": server.username,
             "password": server.password},
            {"name": "nologin", "url": server.url},
        )  # fmt: skip
        accept = {"Accept": OCI_MANIFEST}

        resp = await cache.get(f"/v2/team/{server.username}/app/manifests/v1", headers=accept)
        assert resp.status == 200, await resp.text()
        assert await resp.read() == body
        blob = await cache.get(f"/v2/team/{server.username}/app/blobs/{digest_of(layer)}")
        assert await blob.read() == layer

        refused = await cache.get(f"/v2/nologin/{server.username}/app/manifests/v1", headers=accept)
        assert refused.status == 502
        assert await error_code(refused) == "DENIED"


def test_upstream_urls_must_be_https_unless_on_loopback() -> None:
    assert Upstream(name="hub", url="http://127.0.0.1:5000").url == "http://127.0.0.1:5000"
    assert Upstream(name="hub", url="https://registry-1.docker.io/").url.endswith(".io")
    for bad in ("http://registry.example.com", "ftp://127.0.0.1", "https://h/v2/x"):
        with pytest.raises(ValidationError):
            Upstream(name="hub", url=bad)


def test_two_upstreams_may_not_share_a_name(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="two upstreams"):
        Settings(
            data_dir=tmp_path,
            upstreams=[{"name": "hub", "url": "http://127.0.0.1:1"}] * 2,  # type: ignore[list-item]
        )


@pytest.fixture
async def lying_upstream() -> AsyncIterator[str]:
    """An upstream that answers every blob with bytes that are not the digest's."""

    async def blob(request: web.Request) -> web.Response:
        return web.Response(body=b"not what you asked for" * 1000)

    app = web.Application()
    app.router.add_get("/v2/{name:.+}/blobs/{digest}", blob)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def test_upstream_bytes_that_miss_the_digest_are_never_served_whole_nor_stored(
    make_cache: MakeCache, lying_upstream: str
) -> None:
    cache = await make_cache({"name": "liar", "url": lying_upstream})
    wanted = digest_of(b"the real content")

    resp = await cache.get(f"/v2/liar/some/image/blobs/{wanted}")
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()

    assert await cache.server.app[REGISTRY].repositories.blob_size(wanted) is None
    again = await cache.get(f"/v2/liar/some/image/blobs/{wanted}")
    with pytest.raises(aiohttp.ClientPayloadError):
        await again.read()


async def test_a_fetch_longer_than_its_claims_life_keeps_the_claim_by_heartbeat(
    make_cache: MakeCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fill_claims, "CLAIM_SECONDS", 0.5)
    monkeypatch.setattr(fill_claims, "HEARTBEAT_SECONDS", 0.1)
    content = os.urandom(2 << 20)
    begun, go_on = asyncio.Event(), asyncio.Event()

    async def blob(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(content))})
        await response.prepare(request)
        await response.write(content[: 1 << 20])
        begun.set()
        await go_on.wait()
        await response.write(content[1 << 20 :])
        return response

    app = web.Application()
    app.router.add_get("/v2/{name:.+}/blobs/{digest}", blob)
    slow = TestServer(app, host="127.0.0.1")
    await slow.start_server()
    try:
        cache = await make_cache({"name": "slow", "url": str(slow.make_url("")).rstrip("/")})
        pull = asyncio.ensure_future(cache.get(f"/v2/slow/some/image/blobs/{digest_of(content)}"))
        await begun.wait()
        await asyncio.sleep(1.5)  # three times the claim's life
        other = fill_claims.FillClaims(cache.server.app[DATABASE], "another:2:replica")
        assert await other.held_elsewhere(digest_of(content))
        assert not await other.claim(digest_of(content))
        go_on.set()
        resp = await pull
        assert await resp.read() == content
    finally:
        go_on.set()
        await slow.close()


async def test_pulling_a_tag_keeps_its_manifest_from_ageing_out(
    make_cache: MakeCache, upstream: ReferenceRegistry, upstream_client: Any
) -> None:
    await push_image(upstream_client, "used", "v1", [os.urandom(100)])
    cache = await make_cache(hub(upstream))
    accept = {"Accept": OCI_MANIFEST}
    await cache.get("/v2/hub/used/manifests/v1", headers=accept)
    app = cache.server.app
    await app[DATABASE].execute("UPDATE pull_cache SET used_at = 0")

    again = await cache.get("/v2/hub/used/manifests/v1", headers=accept)
    proxy = app[REGISTRY].proxy
    assert proxy is not None
    removed = await proxy.expire(3600)

    assert again.status == 200
    assert removed == 0
    assert (await cache.get("/v2/hub/used/tags/list")).status == 200
    assert await app[REGISTRY].repositories.resolve_tag("hub/used", "v1") is not None
