"""Garbage collection: what it removes, what it must keep, and running it under load."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.backends.backend import Backend
from tests.durability.helpers import (
    OCI_INDEX,
    OCI_MANIFEST,
    PushRefused,
    RegistryClient,
    beakerd_cli,
    fsck_in_process,
    fsck_json,
    gc_json,
    make_image,
    random_bytes,
    server_sql,
)
from tests.server import Server, running_beakerd


@pytest.fixture
def quiet_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: Backend
) -> Iterator[Server]:
    """A server whose background GC is off: the tests run `beakerd gc` themselves."""
    monkeypatch.setenv("BEAKERD_GC_INTERVAL_SECONDS", "0")
    with running_beakerd(tmp_path, backend.database_args()) as server:
        yield server


def on_disk(server: Server, digest: str) -> bool:
    hex_digest = digest.split(":", 1)[1]
    return (server.data_dir / "blobs" / "sha256" / hex_digest[:2] / hex_digest).exists()


async def test_gc_removes_unreferenced_blobs_after_grace_and_keeps_referenced_ones(
    quiet_server: Server, http: aiohttp.ClientSession
) -> None:
    server = quiet_server
    client = RegistryClient(server, http)
    base = random_bytes(100_000)
    kept = make_image("tester/gc/kept", "v1", [base, random_bytes(50_000)])
    untagged = make_image("tester/gc/untagged", "v1", [base, random_bytes(60_000)])
    await client.push_image(kept)
    await client.push_image(untagged)
    await client.delete_manifest("tester/gc/untagged", "v1")
    loose = random_bytes(70_000)
    loose_digest = await client.push_blob("tester/gc/loose", loose)

    # Everything is younger than the default grace period (1 h): nothing goes.
    assert gc_json(server)["blobs"] == 0
    dry = gc_json(server, "--dry-run", "--grace-seconds", "0")
    assert (dry["dry_run"], dry["blobs"], dry["blob_bytes"]) == (True, 1, len(loose))
    assert on_disk(server, loose_digest)

    report = gc_json(server, "--grace-seconds", "0")
    assert (report["blobs"], report["blob_bytes"], report["manifests"]) == (1, len(loose), 0)
    assert not on_disk(server, loose_digest)
    assert await client.get_blob("tester/gc/loose", loose_digest) is None
    # The untagged manifest is kept while untagged collection is off, and so are its blobs.
    assert await client.pull_image("tester/gc/untagged", untagged.digest) == []

    report = gc_json(server, "--grace-seconds", "0", "--untagged-manifests")
    assert report["manifests"] == 1
    assert report["blobs"] == 2  # its config and unique layer; the shared base stays
    assert report["blob_bytes"] == len(untagged.config) + len(untagged.layers[1])
    assert await client.get_manifest("tester/gc/untagged", untagged.digest) is None
    assert await client.pull_image("tester/gc/kept", "v1") == []
    assert await fsck_in_process(server) == []


async def test_gc_keeps_index_children_referrers_and_beaker_image_pins(
    quiet_server: Server, http: aiohttp.ClientSession
) -> None:
    server = quiet_server
    client = RegistryClient(server, http)
    # An index tagged, over a child pushed by digest only.
    child = make_image("tester/gc/multi", "unused", [random_bytes(10_000)])
    await client.push_image_by_digest(child)
    index = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child.digest,
                       "size": len(child.manifest)}],
    }).encode()  # fmt: skip
    await client.push_manifest("tester/gc/multi", "v1", index, OCI_INDEX)
    # A referrer (untagged) of a tagged image.
    subject = make_image("tester/gc/signed", "v1", [random_bytes(10_000)])
    await client.push_image(subject)
    referrer = make_image("tester/gc/signed", "unused", [random_bytes(1_000)])
    referrer.set_subject(subject)
    await client.push_image_by_digest(referrer)
    # A Beaker image's pinned manifest (untagged here to prove the pin alone holds it).
    # The image and its repository exist first, as creating an image makes them.
    pinned = make_image("gc/beaker-image", "unused", [random_bytes(10_000)])
    await server_sql(
        server,
        "INSERT INTO images (id, author_id, workspace_id, repository, created, committed, digest)"
        " SELECT 'im-gc', a.id, w.id, 'gc/beaker-image', ?, ?, ? FROM accounts a"
        " JOIN workspaces w ON w.author_id = a.id WHERE a.name = ? LIMIT 1",
        (time.time(), time.time(), pinned.digest, server.username),
    )
    await server_sql(
        server,
        "INSERT INTO repositories (name, created_at) VALUES ('gc/beaker-image', ?)",
        (time.time(),),
    )
    await client.push_image_by_digest(pinned)
    # And one manifest nothing holds.
    lonely = make_image("tester/gc/lonely", "unused", [random_bytes(10_000)])
    await client.push_image_by_digest(lonely)

    report = gc_json(server, "--grace-seconds", "0", "--untagged-manifests")
    assert report["manifests"] == 1
    assert report["blobs"] == 2  # the lonely manifest's config and layer
    assert await client.get_manifest("tester/gc/lonely", lonely.digest) is None
    for name, reference in [
        ("tester/gc/multi", child.digest),
        ("tester/gc/signed", referrer.digest),
        ("tester/gc/signed", "v1"),
        ("gc/beaker-image", pinned.digest),
    ]:
        assert await client.pull_image(name, reference) == [], (name, reference)
    assert await client.get_manifest("tester/gc/multi", "v1") == index


async def _links(server: Server, repository: str) -> set[str]:
    rows = await server_sql(
        server,
        "SELECT l.digest FROM repository_blobs l JOIN repositories r ON r.id = l.repository_id"
        " WHERE r.name = ?",
        (repository,),
    )
    return {str(row[0]) for row in rows}


async def test_gc_removes_dangling_links_after_grace_and_keeps_referenced_ones(
    quiet_server: Server, http: aiohttp.ClientSession
) -> None:
    """A link no manifest of its repository references (a push abandoned or refused, its
    undoing cut short by a kill) goes, even when a manifest elsewhere holds its blob."""
    server = quiet_server
    client = RegistryClient(server, http)
    base = random_bytes(20_000)
    held = make_image("tester/gc/held", "v1", [base])
    await client.push_image(held)
    own = make_image("tester/gc/half", "v1", [random_bytes(10_000)])
    await client.push_image(own)
    base_digest = await client.push_blob("tester/gc/half", base)  # never referenced there
    linked = await _links(server, "tester/gc/half")

    assert gc_json(server)["links"] == 0
    report = gc_json(server, "--grace-seconds", "0")
    assert (report["links"], report["blobs"]) == (1, 0)
    assert await _links(server, "tester/gc/half") == linked - {base_digest}
    assert base_digest in await _links(server, "tester/gc/held")
    assert await client.pull_image("tester/gc/held", "v1") == []
    assert await client.pull_image("tester/gc/half", "v1") == []
    assert await fsck_in_process(server) == []


async def test_gc_expires_idle_upload_sessions_with_their_files(
    quiet_server: Server, http: aiohttp.ClientSession
) -> None:
    server = quiet_server
    client = RegistryClient(server, http)
    session = await client.start_upload("tester/gc/uploads")
    await client.patch(session, b"y" * 5000, 0)
    assert gc_json(server)["uploads"] == 0  # idle for less than a day

    report = gc_json(server, "--upload-expiry-seconds", "0")
    assert (report["uploads"], report["upload_bytes"]) == (1, 5000)
    assert await client.upload_offset(session) is None
    assert list((server.data_dir / "uploads").iterdir()) == []
    summary = beakerd_cli(server, "gc").stdout
    assert summary.startswith("gc: removed 0 blobs")


async def test_images_pull_whole_while_background_gc_runs_during_pushes_and_deletes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http: aiohttp.ClientSession, backend: Backend
) -> None:
    # A pass every 0.2 s, manifests collected as soon as they are untagged and blobs once
    # unreferenced for 3 s (longer than any single push here takes).
    monkeypatch.setenv("BEAKERD_GC_INTERVAL_SECONDS", "0.2")
    monkeypatch.setenv("BEAKERD_GC_GRACE_SECONDS", "3")
    monkeypatch.setenv("BEAKERD_GC_UNTAGGED_MANIFESTS", "true")
    rng = random.Random()
    with running_beakerd(tmp_path, backend.database_args()) as server:
        client = RegistryClient(server, http)
        base = random_bytes(200_000)
        kept: list[tuple[str, str]] = []
        deleted = 0
        problems: list[str] = []
        deadline = time.monotonic() + 12

        async def pusher(worker: int) -> None:
            nonlocal deleted
            n = 0
            while time.monotonic() < deadline:
                n += 1
                image = make_image(
                    f"tester/gcload/w{worker}", f"t{n}", [base, random_bytes(30_000)]
                )
                await client.push_image(image)
                problems.extend(await client.pull_image(image.repository, image.tag))
                if rng.random() < 0.5:
                    await client.delete_manifest(image.repository, image.tag)
                    deleted += 1
                else:
                    kept.append((image.repository, image.tag))
                if kept:
                    problems.extend(await client.pull_image(*rng.choice(kept)))

        await asyncio.gather(*(pusher(w) for w in range(4)))
        assert problems == []
        final = gc_json(server, "--grace-seconds", "0")
        for name, tag in kept:
            assert await client.pull_image(name, tag) == [], (name, tag)
        assert await fsck_in_process(server) == []
        passes = [line for line in server.log().splitlines() if "gc: removed" in line]
        freed = final["blobs"] + sum(int(line.split("removed ")[1].split()[0]) for line in passes)
        # Each deleted image left a config and a unique layer to collect, the base stays.
        assert freed == 2 * deleted
        print(
            f"\ngc under load: {len(kept) + deleted} images pushed, {deleted} deleted,"
            f" {len(passes)} background passes freed blobs, {freed} blobs freed in all"
        )


async def test_gc_removes_orphan_repositories_that_fsck_reported_and_keeps_owned_ones(
    quiet_server: Server, http: aiohttp.ClientSession
) -> None:
    server = quiet_server
    client = RegistryClient(server, http)
    api = {"Authorization": f"Bearer {server.password}", "Content-Type": "application/json"}
    async with http.post(
        f"{server.url}/api/v3/images",
        params={"name": "doomed"},
        json={"workspace": "tester/default", "imageID": "sha256:" + "0" * 64, "imageTag": "x"},
        headers=api,
    ) as resp:
        assert resp.status == 200, await resp.text()
        image = await resp.json()
    image_repository = image["dockerTag"].split("/", 1)[1]
    shared = random_bytes(20_000)
    owned = make_image("tester/gc/owned", "v1", [shared, random_bytes(10_000)])
    of_image = make_image(image_repository, "latest", [shared, random_bytes(10_000)])
    for pushed in (owned, of_image):
        await client.push_image(pushed)
    async with http.delete(f"{server.url}/api/v3/images/{image['id']}", headers=api) as resp:
        assert resp.status == 204
    # Neither a push after the image is gone nor one outside every namespace makes a
    # repository any more...
    stale = make_image(image_repository, "latest", [random_bytes(10_000)])
    nobody = make_image("nobody/app", "v1", [shared, random_bytes(10_000)])
    for pushed in (stale, nobody):
        with pytest.raises(PushRefused) as refused:
            await client.push_image(pushed)
        assert refused.value.status == 404
    # ...but a data folder from before this rule may hold such repositories.
    for name in (image_repository, "nobody/app"):
        await server_sql(
            server, "INSERT INTO repositories (name, created_at) VALUES (?, ?)", (name, time.time())
        )

    _, report = fsck_json(server)
    orphans = {f["subject"] for f in report["findings"] if f["kind"] == "orphan-repository"}
    assert orphans == {image_repository, "nobody/app"}
    assert gc_json(server)["repositories"] == 0  # younger than the grace period

    report = gc_json(server, "--grace-seconds", "0")
    assert report["repositories"] == 2
    # The deleted image's config and layer; the layer it shared with an owned image stays.
    assert report["blobs"] == 2
    left = await server_sql(
        server,
        "SELECT count(*) FROM repositories WHERE name IN (?, 'nobody/app')",
        (image_repository,),
    )
    assert left[0][0] == 0
    assert await client.pull_image("tester/gc/owned", "v1") == []
    code, final = fsck_json(server)
    assert (code, final["findings"]) == (0, [])
