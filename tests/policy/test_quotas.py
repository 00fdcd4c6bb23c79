"""Storage quotas: each blob counted once per account; a push past the quota is refused whole."""

from __future__ import annotations

import json

from metadata.accounts import create_account, set_quota
from tests.policy.conftest import Client, MakeClient, api_headers, database
from tests.registry.helpers import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    digest_of,
    error_code,
    push_blob,
)

LAYER = b"L" * 600


async def _storage(client: Client) -> dict[str, object]:
    resp = await client.get("/api/v3/user/storage", headers=api_headers(client))
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def test_a_blob_upload_past_the_quota_is_refused_and_not_linked(
    make_client: MakeClient,
) -> None:
    client = await make_client(quota_bytes="1000")
    await push_blob(client, "tester/app", LAYER)
    big = b"B" * 500
    resp = await client.post(
        "/v2/tester/app/blobs/uploads/", params={"digest": digest_of(big)}, data=big
    )
    assert resp.status == 403
    assert await error_code(resp) == "DENIED"
    message = (await resp.json())["errors"][0]["message"]
    assert message.startswith("quota exceeded: 600 B used of 1000 B")
    assert (await client.head(f"/v2/tester/app/blobs/{digest_of(big)}")).status == 404
    assert await _storage(client) == {"account": "tester", "usedBytes": 600, "quotaBytes": 1000}


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
    await push_blob(client, "tester/app", config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, LAYER * 2)],
        }
    ).encode()
    resp = await client.put(
        "/v2/tester/app/manifests/latest", data=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert resp.status == 403
    assert (await resp.json())["errors"][0]["message"].startswith(
        "quota exceeded: 2 B used of 1000 B (account tester; this push adds 1.2 KiB)"
    )
    assert (await client.get("/v2/tester/app/tags/list")).status == 200
    assert (await (await client.get("/v2/tester/app/tags/list")).json())["tags"] == []
    assert (await _storage(client))["usedBytes"] == len(config)


async def test_usage_and_quotas_are_in_metrics(make_client: MakeClient) -> None:
    client = await make_client(quota_bytes="10K")
    await push_blob(client, "tester/app", LAYER)
    text = await (await client.get("/metrics")).text()
    assert 'beakerd_account_storage_bytes{account="tester"} 600' in text
    assert 'beakerd_account_quota_bytes{account="tester"} 10240' in text
