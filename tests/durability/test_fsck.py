"""`beakerd fsck [--repair]` on a data folder damaged in every way it knows about."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.backends.backend import Backend
from tests.durability.helpers import (
    RegistryClient,
    digest_of,
    finding_kinds,
    fsck_json,
    make_image,
    random_bytes,
    server_sql,
)
from tests.server import Server, running_beakerd


def blob_path(server: Server, digest: str) -> Path:
    hex_digest = digest.split(":", 1)[1]
    return server.data_dir / "blobs" / "sha256" / hex_digest[:2] / hex_digest


@pytest.fixture
def server(tmp_path: Path, backend: Backend) -> Iterator[Server]:
    with running_beakerd(tmp_path, backend.database_args()) as running:
        yield running


async def test_fsck_reports_every_kind_of_damage_and_repair_never_drops_a_referenced_blob(
    server: Server, http: aiohttp.ClientSession
) -> None:
    client = RegistryClient(server, http)
    image = make_image("tester/fsck/app", "v1", [random_bytes(40_000), random_bytes(50_000)])
    await client.push_image(image)
    unreferenced = await client.push_blob("tester/fsck/loose", random_bytes(30_000))
    stale_session = await client.start_upload("tester/fsck/loose")
    await client.patch(stale_session, b"partial", 0)
    code, report = fsck_json(server)
    assert (code, finding_kinds(report)) == (0, [])

    corrupt_layer, lost_layer = (digest_of(layer) for layer in image.layers)
    blob_path(server, corrupt_layer).write_bytes(b"x" * len(image.layers[0]))
    blob_path(server, lost_layer).unlink()
    blob_path(server, unreferenced).unlink()
    orphan = random_bytes(20_000)
    blob_path(server, digest_of(orphan)).parent.mkdir(parents=True, exist_ok=True)
    blob_path(server, digest_of(orphan)).write_bytes(orphan)
    mislabelled = "sha256:" + hashlib.sha256(b"what the name says").hexdigest()
    blob_path(server, mislabelled).parent.mkdir(parents=True, exist_ok=True)
    blob_path(server, mislabelled).write_bytes(b"something else")
    (blob_path(server, corrupt_layer).parent / "junk.tmp").write_bytes(b"junk")
    (server.data_dir / "uploads" / str(uuid.uuid4())).write_bytes(b"no session row")
    session_id = stale_session.rsplit("/", 1)[1]
    (server.data_dir / "uploads" / session_id).unlink()

    code, report = fsck_json(server)
    assert code == 1
    assert finding_kinds(report) == sorted(
        ["corrupt", "missing-file", "missing-file", "orphan-file", "orphan-file", "stray-file",
         "upload-file-without-row", "upload-without-file"]
    )  # fmt: skip

    code, report = fsck_json(server, "--repair", "--grace-seconds", "0")
    repairs = {(f["kind"], f["subject"]): f["repair"] for f in report["findings"]}
    assert repairs[("missing-file", unreferenced)] == "row deleted"
    assert repairs[("missing-file", lost_layer)] is None  # referenced: reported, kept
    assert repairs[("corrupt", corrupt_layer)].startswith("moved to")
    assert repairs[("orphan-file", digest_of(orphan))] == "deleted"
    assert "moved to" in repairs[("orphan-file", mislabelled)]
    assert code == 1  # the referenced blobs that are gone need a push; fsck cannot make them

    rows = {r[0] for r in await server_sql(server, "SELECT digest FROM blobs")}
    assert {corrupt_layer, lost_layer} <= rows and unreferenced not in rows
    assert not blob_path(server, digest_of(orphan)).exists()
    assert list((server.data_dir / "lost+found").iterdir())

    # What is left is exactly the referenced blobs without files; pushing them again heals it.
    code, report = fsck_json(server)
    assert sorted(f["subject"] for f in report["findings"]) == sorted([corrupt_layer, lost_layer])
    for layer in image.layers:
        await client.push_blob("tester/fsck/app", layer)
    assert fsck_json(server)[0] == 0
    assert await client.pull_image("tester/fsck/app", "v1") == []
