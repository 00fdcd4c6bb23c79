"""kill -9 the real server at random moments during concurrent pushes, again and again.

Each round starts monolithic image pushes, chunked uploads and skopeo copies at once, sends
SIGKILL to the server (one process, or the supervisor and both its workers) after a random
delay, restarts it, and checks:
- every blob and manifest acknowledged (2xx) in any round so far is served and hashes right;
- nothing partial is visible: an interrupted blob is either absent or whole, and fsck finds
  no corrupt file, no row without its file and no dangling reference;
- every interrupted push can be retried to completion (chunked uploads resume their session
  from the offset the server reports, when the session survived).
At the end a GC pass with no grace settles what the kills left behind, and fsck is clean.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.durability.helpers import (
    Acks,
    RegistryClient,
    digest_of,
    finding_kinds,
    fsck_in_process,
    fsck_json,
    gc_json,
    make_image,
    random_bytes,
)
from tests.e2e.oci_layout import OciLayout, random_layers
from tests.e2e.tools import require_tool
from tests.server import Server, running_beakerd

ROUNDS = int(os.environ.get("BEAKERD_CRASH_ROUNDS", "20"))
CHUNK = 128 << 10
# Findings that mean an acknowledged or visible byte went wrong (orphan files and stale upload
# sessions are the expected leftovers of a kill, settled by GC).
DAMAGE = {"corrupt", "missing-file", "dangling-reference", "stray-file", "bad-row"}


@dataclass
class Push:
    """One client operation of a round: `run` pushes (and records acks), `retry` finishes it."""

    label: str
    run: Callable[[RegistryClient, Acks], Awaitable[None]]
    retry: Callable[[RegistryClient, Acks], Awaitable[None]]
    # Blobs that may have been interrupted: each must be absent or whole after a restart.
    pending: list[tuple[str, bytes]]


def image_push(repository: str, shared: bytes) -> Push:
    image = make_image(repository, "v1", [shared, random_bytes(128 << 10)])

    async def run(client: RegistryClient, acks: Acks) -> None:
        await client.push_image(image, acks)

    return Push(f"image {repository}", run, run, [(repository, b) for b in image.blobs])


def big_blob_push(repository: str) -> Push:
    data = random_bytes(2 << 20)

    async def run(client: RegistryClient, acks: Acks) -> None:
        digest = await client.push_blob(repository, data)
        acks.blobs[(repository, digest)] = len(data)

    return Push(f"monolithic {repository}", run, run, [(repository, data)])


def chunked_push(repository: str) -> Push:
    data = random_bytes(3 << 19)
    sessions: list[str] = []

    async def run(client: RegistryClient, acks: Acks) -> None:
        digest = await client.push_blob_chunked(repository, data, CHUNK, sessions)
        acks.blobs[(repository, digest)] = len(data)

    async def retry(client: RegistryClient, acks: Acks) -> None:
        # Resume the interrupted session where the server says it stands; start over only if
        # it never got one (or the session was finished and is gone).
        digest = await client.resume_chunked(sessions[-1], data, CHUNK) if sessions else None
        if digest is None:
            digest = await client.push_blob_chunked(repository, data, CHUNK)
        acks.blobs[(repository, digest)] = len(data)

    return Push(f"chunked {repository}", run, retry, [(repository, data)])


def skopeo_push(server: Server, layout: OciLayout, tag: str, repository: str) -> Push:
    descriptor = layout.resolve(tag)
    manifest = layout.read_blob(descriptor.digest)
    document = layout.read_json(descriptor.digest)
    blobs = [layout.read_blob(d["digest"]) for d in [document["config"], *document["layers"]]]

    async def run(client: RegistryClient, acks: Acks) -> None:
        proc = await asyncio.create_subprocess_exec(
            "skopeo", "--insecure-policy", "copy", "--preserve-digests",
            "--dest-tls-verify=false", f"--dest-creds={server.username}:{server.password}",
            f"oci:{layout.root}:{tag}", f"docker://{server.address}/{repository}:v1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "REGISTRY_AUTH_FILE": str(layout.root / "auth.json")},
        )  # fmt: skip
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"skopeo failed: {output.decode(errors='replace')[-500:]}")
        for blob in blobs:
            acks.blobs[(repository, digest_of(blob))] = len(blob)
        acks.manifests[(repository, "v1")] = manifest
        acks.manifests[(repository, descriptor.digest)] = manifest

    return Push(f"skopeo {repository}", run, run, [(repository, b) for b in blobs])


async def run_until_killed(
    server: Server, pushes: list[Push], acks: Acks, delay: float
) -> list[Push]:
    """Run the round's pushes, SIGKILL the server after `delay`; returns the interrupted ones."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        client = RegistryClient(server, session)
        tasks = [asyncio.create_task(push.run(client, acks)) for push in pushes]
        await asyncio.sleep(delay)
        server.kill()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    return [push for push, result in zip(pushes, results, strict=True) if result is not None]


async def check_after_restart(server: Server, acks: Acks, interrupted: list[Push]) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        client = RegistryClient(server, session)
        assert await client.verify(acks) == []
        for push in interrupted:
            for repository, data in push.pending:
                served = await client.get_blob(repository, digest_of(data))
                assert served is None or served == data, f"partial blob visible ({push.label})"
        for push in interrupted:
            await push.retry(client, acks)
        assert await client.verify(acks) == []


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "two-workers"])
async def test_acknowledged_pushes_survive_repeated_kill_9(tmp_path: Path, workers: int) -> None:
    require_tool("skopeo")  # a skip on a laptop without it, a failure in CI
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    layout = OciLayout(tmp_path / "source")
    for k in range(3):
        image = layout.add_image(random_layers(2, 100_000, os.urandom(8)))
        layout.tag(image, f"img{k}")
    acks = Acks()
    kills = interrupted_total = 0
    with running_beakerd(tmp_path / "server", ["--workers", str(workers)]) as server:
        for round_no in range(ROUNDS):
            shared = random_bytes(64 << 10)
            prefix = f"{server.username}/crash/r{round_no}"
            pushes = [
                *(image_push(f"{prefix}/image{i}", shared) for i in range(3)),
                *(chunked_push(f"{prefix}/chunked{i}") for i in range(2)),
                big_blob_push(f"{prefix}/big"),
                *(skopeo_push(server, layout, f"img{i}", f"{prefix}/skopeo{i}") for i in range(2)),
            ]
            interrupted = await run_until_killed(server, pushes, acks, rng.uniform(0.02, 0.6))
            kills += 1
            interrupted_total += len(interrupted)
            server.restart()
            await check_after_restart(server, acks, interrupted)
            findings = await fsck_in_process(server.data_dir)
            damage = [f for f in findings if f.split(":", 1)[0] in DAMAGE]
            assert damage == [], f"seed {seed}, round {round_no}: {damage}"
        # What kills leave behind (orphan files of interrupted publishes, idle sessions) is
        # garbage; a pass with no grace and no upload expiry removes it, and fsck is clean.
        gc = gc_json(server.data_dir, "--grace-seconds", "0", "--upload-expiry-seconds", "0")
        _, report = fsck_json(server.data_dir)
        assert finding_kinds(report) == [], report["findings"]
        async with aiohttp.ClientSession() as session:
            # GC with no grace removed unreferenced blobs (the bare blob pushes); every image
            # must still be whole.
            client = RegistryClient(server, session)
            for repository, reference in acks.manifests:
                assert await client.pull_image(repository, reference) == []
    print(
        f"\ncrash run (seed {seed}): {ROUNDS} rounds, {kills} kills,"
        f" {len(acks.blobs)} blobs and {len(acks.manifests) // 2} manifests acknowledged,"
        f" {interrupted_total} pushes interrupted and retried to completion;"
        f" final gc: {gc['blobs']} blobs, {gc['uploads']} uploads, {gc['orphan_files']} orphans"
    )
