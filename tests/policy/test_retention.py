"""Retention: newest N tags kept, old tags and old untagged manifests removed, never what a
committed image or an immutable tag holds; a dry run lists exactly what a pass removes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from beakerd import cli
from storage.policies import Policy
from storage.retention import Retention
from tests.policy.conftest import Client, MakeClient, database, repositories
from tests.registry.helpers import OCI_INDEX, OCI_MANIFEST, push_image

DAY = 86400.0
POLICY = {
    "repositories": "tester/*",
    "tags": "dev-*",
    "keep_newest": 2,
    "immutable_tags": ["dev-keep"],
    "untagged_older_than": "7d",
}


async def _tags(client: Client, name: str) -> list[str]:
    return list((await (await client.get(f"/v2/{name}/tags/list")).json())["tags"])


async def _push_dev_tags(client: Client, name: str) -> None:
    """dev-keep (oldest), dev-1 ... dev-4 (newest), latest; pushed in that order of time."""
    for n, tag in enumerate(["dev-keep", "dev-1", "dev-2", "dev-3", "dev-4", "latest"]):
        await push_image(client, name, tag, [f"{name} {tag}".encode()])
        await database(client).execute(
            "UPDATE tags SET updated_at = ? WHERE name = ?"
            " AND repository_id = (SELECT id FROM repositories WHERE name = ?)",
            (1000.0 + n, tag, name),
        )


def _retention(client: Client) -> Retention:
    repos = repositories(client)
    return Retention(repos.db, repos.policies, repos.events)


async def test_a_dry_run_lists_what_a_pass_then_removes(make_client: MakeClient) -> None:
    client = await make_client(policies=[POLICY])
    await _push_dev_tags(client, "tester/app")
    dry = await _retention(client).apply(dry_run=True)
    assert [(t.repository, t.tag) for t in dry.tags] == [
        ("tester/app", "dev-1"),
        ("tester/app", "dev-2"),
    ]
    assert dry.manifests == []  # their manifests are young
    assert len(await _tags(client, "tester/app")) == 6

    done = await _retention(client).apply()
    assert done.tags == dry.tags
    assert await _tags(client, "tester/app") == ["dev-3", "dev-4", "dev-keep", "latest"]

    # A week on, the manifests those tags held are old and untagged: they go too.
    later = await _retention(client).apply(now=time.time() + 8 * DAY)
    assert later.tags == [] and len(later.manifests) == 2


async def test_an_untagged_manifest_a_tagged_index_holds_is_kept(make_client: MakeClient) -> None:
    client = await make_client(policies=[{"repositories": "tester/*", "untagged_older_than": "1d"}])
    held, held_body = await push_image(client, "tester/multi", None, [b"amd64"])
    loose, _ = await push_image(client, "tester/multi", None, [b"arm64"])
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": held, "size": len(held_body)}],
        }
    ).encode()
    resp = await client.put(
        "/v2/tester/multi/manifests/latest", data=index, headers={"Content-Type": OCI_INDEX}
    )
    assert resp.status == 201
    report = await _retention(client).apply(now=time.time() + 2 * DAY)
    assert [m.digest for m in report.manifests] == [loose]


async def test_tags_older_than_alone_removes_every_old_matching_tag(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    await repositories(client).policies.store(
        Policy(repositories="tester/app", tags="dev-*", tags_older_than=30 * DAY)
    )
    await _push_dev_tags(client, "tester/app")
    await _push_dev_tags(client, "tester/other")
    report = await _retention(client).apply(now=1000.0 + 30 * DAY + 3.5)
    assert [t.tag for t in report.tags] == ["dev-1", "dev-2", "dev-3", "dev-keep"]
    assert len(await _tags(client, "tester/other")) == 6


async def test_a_committed_images_repository_is_never_touched(make_client: MakeClient) -> None:
    client = await make_client(policies=[{**POLICY, "keep_newest": 0}])
    await _push_dev_tags(client, "tester/frozen")
    await database(client).execute(
        "UPDATE repositories SET immutable = 1 WHERE name = 'tester/frozen'"
    )
    report = await _retention(client).apply(now=time.time() + 365 * DAY)
    assert report.tags == [] and report.manifests == []


async def test_beakerd_retention_dry_run_prints_what_would_go(
    make_client: MakeClient,
    tmp_path: Path,
    database_settings: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = await make_client()
    await _push_dev_tags(client, "tester/app")
    flags = ["--data-dir", str(tmp_path / "data")]
    if "database" in database_settings:
        flags += ["--database", database_settings["database"]]
    set_flags = [
        "tester/*",
        "--tags",
        "dev-*",
        "--keep-newest",
        "3",
        "--immutable-tags",
        "dev-keep",
    ]
    assert await _cli([*flags, "policy", "set", *set_flags]) == 0
    assert await _cli([*flags, "retention", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2].startswith("tag tester/app:dev-1 (sha256:") and out[-2].endswith("by tester/*")
    assert out[-1] == "retention: would remove 1 tags and 0 manifests"
    assert len(await _tags(client, "tester/app")) == 6


async def _cli(args: list[str]) -> int:
    # The command runs its own event loop: off this one, as it would in its own process.
    import asyncio

    return await asyncio.to_thread(cli.main, args)
