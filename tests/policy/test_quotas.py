"""Storage quotas: each blob counted once per account; a push past the quota is refused whole."""

from __future__ import annotations

import json

from aiohttp import ClientResponse, web

from beakerd.app import BLOB_BACKEND, DATABASE, SETTINGS, repository_owners
from metadata.accounts import create_account, set_quota
from registry.context import REGISTRY
from storage.gc import GarbageCollector, GcPolicy
from tests.policy.conftest import Client, MakeClient, api_headers, database, repositories
from tests.registry.helpers import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    error_code,
    push_blob,
    push_image,
)

LAYER = b"L" * 600


async def _storage(client: Client) -> dict[str, object]:
    resp = await client.get("/api/v3/user/storage", headers=api_headers(client))
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def _push_manifest(
    client: Client, name: str, tag: str, config: bytes, layers: list[bytes]
) -> ClientResponse:
    """Push `config`, then PUT an image manifest naming it and `layers` (already pushed)."""
    await push_blob(client, name, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
        }
    ).encode()
    return await client.put(
        f"/v2/{name}/manifests/{tag}", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    )


def _collector(client: Client) -> GarbageCollector:
    app: web.Application = client.server.app  # type: ignore[assignment]
    db, settings, blobs = app[DATABASE], app[SETTINGS], app[BLOB_BACKEND]
    return GarbageCollector(
        db, blobs.root, GcPolicy(grace_seconds=0), app[REGISTRY].changed,
        repository_owners(db, settings), blobs.reclaimer,
    )  # fmt: skip


def _account_bytes(metrics: str) -> str:
    return next(
        line for line in metrics.splitlines() if line.startswith("beakerd_account_storage_bytes")
    )


async def test_a_blob_upload_past_the_quota_is_refused_and_not_linked(
    make_client: MakeClient,
) -> None:
    client = await make_client(quota_bytes="1000")
    await push_image(client, "tester/base", "v1", [LAYER])
    held = int((await _storage(client))["usedBytes"])  # type: ignore[call-overload]
    big = b"B" * 500
    resp = await client.post(
        "/v2/tester/app/blobs/uploads/", params={"digest": digest_of(big)}, data=big
    )
    assert resp.status == 403
    assert await error_code(resp) == "DENIED"
    message = (await resp.json())["errors"][0]["message"]
    assert message.startswith(f"quota exceeded: {held} B used of 1000 B")
    assert (await client.head(f"/v2/tester/app/blobs/{digest_of(big)}")).status == 404
    assert await _storage(client) == {"account": "tester", "usedBytes": held, "quotaBytes": 1000}


async def test_a_push_past_the_quota_keeps_none_of_its_layers(make_client: MakeClient) -> None:
    client = await make_client(quota_bytes="2000")
    await push_image(client, "tester/app", "v1", [LAYER])
    before = await _storage(client)
    metrics_before = _account_bytes(await (await client.get("/metrics")).text())
    # The next push: a layer already held (mounted from the image above), a new one, a
    # session still arriving, and a layer that takes the account past its quota.
    shared = digest_of(LAYER)
    mounted = await client.post(
        "/v2/tester/next/blobs/uploads/", params={"mount": shared, "from": "tester/app"}
    )
    assert mounted.status == 201
    fresh = await push_blob(client, "tester/next", b"F" * 700)
    started = await client.post("/v2/tester/next/blobs/uploads/")
    location = started.headers["Location"]
    assert (await client.patch(location, data=b"S" * 300)).status == 202
    big = b"B" * 900
    resp = await client.post(
        "/v2/tester/next/blobs/uploads/", params={"digest": digest_of(big)}, data=big
    )
    assert resp.status == 403
    message = (await resp.json())["errors"][0]["message"]
    assert message.startswith("quota exceeded:")

    assert await _storage(client) == before
    assert _account_bytes(await (await client.get("/metrics")).text()) == metrics_before
    stored = repositories(client)
    assert await stored.linked_blob_size("tester/next", fresh) is None
    assert await stored.linked_blob_size("tester/next", shared) is None
    # docker checks each layer with a HEAD once uploaded: one that finished just before the
    # refusal still answers (so docker reports the quota, not "unknown blob"); GET does not.
    assert (await client.head(f"/v2/tester/next/blobs/{fresh}")).status == 200
    assert (await client.get(f"/v2/tester/next/blobs/{fresh}")).status == 404
    # What a manifest references stays: the first image, whole.
    assert await stored.linked_blob_size("tester/app", shared) == len(LAYER)
    assert (await client.get("/v2/tester/app/manifests/v1")).status == 200
    assert await (await client.get(f"/v2/tester/app/blobs/{shared}")).read() == LAYER
    # The session still open when the push was refused answers with the refusal.
    resp = await client.put(location, params={"digest": digest_of(b"S" * 300)})
    assert resp.status == 403
    assert await error_code(resp) == "DENIED"
    assert (await resp.json())["errors"][0]["message"] == message
    assert await _storage(client) == before
    # GC takes the blobs the refused push left, and with them what still answered HEAD.
    await _collector(client).collect()
    assert (await client.head(f"/v2/tester/next/blobs/{fresh}")).status == 404
    assert (await client.get("/v2/tester/app/manifests/v1")).status == 200
    assert await _storage(client) == before


async def test_a_manifest_past_the_quota_unlinks_the_layers_pushed_before_it(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    db = database(client)
    await create_account(db, "bob")
    await set_quota(db, "tester", 1000)
    await push_image(client, "tester/app", "v1", [LAYER])
    before = await _storage(client)
    await push_blob(client, "bob/data", LAYER * 2)
    config = b'{"n": 2}'
    resp = await _push_manifest(client, "tester/app", "v2", config, [LAYER, LAYER * 2])
    assert resp.status == 403
    assert await _storage(client) == before
    assert await repositories(client).linked_blob_size("tester/app", digest_of(config)) is None
    assert await repositories(client).linked_blob_size("tester/app", digest_of(LAYER)) == len(LAYER)


async def test_a_blob_counts_once_across_the_accounts_repositories(
    make_client: MakeClient,
) -> None:
    client = await make_client(quota_bytes="1000")
    for name in ("tester/a", "tester/b", "tester"):
        await push_blob(client, name, LAYER)  # a second link adds nothing: all three pass
    assert (await _storage(client))["usedBytes"] == 600


async def test_a_manifest_that_would_pass_the_quota_leaves_nothing_behind(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    db = database(client)
    await create_account(db, "bob")
    await set_quota(db, "tester", 1000)
    # The layer is bob's; linking it into the admin's repository would add it to their usage.
    await push_blob(client, "bob/data", LAYER * 2)
    config = b"{}"
    resp = await _push_manifest(client, "tester/app", "latest", config, [LAYER * 2])
    assert resp.status == 403
    assert (await resp.json())["errors"][0]["message"].startswith(
        "quota exceeded: 2 B used of 1000 B (account tester; this push adds 1.2 KiB)"
    )
    assert (await client.get("/v2/tester/app/tags/list")).status == 200
    assert (await (await client.get("/v2/tester/app/tags/list")).json())["tags"] == []
    assert (await _storage(client))["usedBytes"] == 0


async def test_usage_and_quotas_are_in_metrics(make_client: MakeClient) -> None:
    client = await make_client(quota_bytes="10K")
    await push_blob(client, "tester/app", LAYER)
    text = await (await client.get("/metrics")).text()
    assert 'beakerd_account_storage_bytes{account="tester"} 600' in text
    assert 'beakerd_account_quota_bytes{account="tester"} 10240' in text
