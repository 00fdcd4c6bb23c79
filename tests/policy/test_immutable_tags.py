"""Immutable tags: once a protected tag exists, it is never moved nor deleted."""

from __future__ import annotations

import json

from storage.policies import Policy
from tests.policy.conftest import MakeClient, repositories
from tests.registry.helpers import OCI_MANIFEST, error_code, push_image

RELEASES = [{"repositories": "tester/*", "immutable_tags": ["v*"]}]


async def test_a_protected_tag_is_pushed_once_then_refuses_to_move(
    make_client: MakeClient,
) -> None:
    client = await make_client(policies=RELEASES)
    first, body = await push_image(client, "tester/app", "v1", [b"one"])
    # The same manifest again (a retried push) is no move.
    again = await client.put(
        "/v2/tester/app/manifests/v1", data=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert again.status == 201

    other, other_body = await push_image(client, "tester/app", None, [b"two"])
    moved = await client.put(
        "/v2/tester/app/manifests/v1", data=other_body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert moved.status == 403
    assert await error_code(moved) == "DENIED"
    message = (await moved.json())["errors"][0]["message"]
    assert "tag v1 of tester/app is immutable" in message and "'v*'" in message
    resolved = await client.get("/v2/tester/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert resolved.headers["Docker-Content-Digest"] == first != other


async def test_a_protected_tag_and_its_manifest_cannot_be_deleted(
    make_client: MakeClient,
) -> None:
    client = await make_client(policies=RELEASES)
    digest, _ = await push_image(client, "tester/app", "v2", [b"layer"])
    for reference in ("v2", digest):
        resp = await client.delete(f"/v2/tester/app/manifests/{reference}")
        assert resp.status == 403, reference
        assert await error_code(resp) == "DENIED"
    assert (await client.head(
        "/v2/tester/app/manifests/v2", headers={"Accept": OCI_MANIFEST}
    )).status == 200  # fmt: skip


async def test_other_tags_and_other_repositories_move_freely(make_client: MakeClient) -> None:
    client = await make_client(policies=RELEASES)
    await push_image(client, "tester/app", "latest", [b"a"])
    await push_image(client, "tester/app", "latest", [b"b"])
    assert (await client.delete("/v2/tester/app/manifests/latest")).status == 202
    await push_image(client, "tester", "v1", [b"a"])
    await push_image(client, "tester", "v1", [b"b"])  # not under tester/*


async def test_a_rule_stored_by_the_admin_command_binds_the_next_write(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    await push_image(client, "tester/lib", "release-1", [b"x"])
    await repositories(client).policies.store(
        Policy(repositories="tester/lib", immutable_tags=("release-*",))
    )
    resp = await client.delete("/v2/tester/lib/manifests/release-1")
    assert resp.status == 403
    body = json.loads(await resp.text())
    assert body["errors"][0]["detail"] == {"tag": "release-1", "rule": "release-*"}
