"""Chunked pushes through nginx: each chunk may land on any replica, and a replica that dies in
the middle of one loses nothing the others cannot continue from."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends.cluster import Cluster, Replica, running_cluster
from tests.backends.postgres import PostgresServer
from tests.backends.seaweedfs import SeaweedFS
from tests.cluster.pushes import ChunkedPush, random_blob

pytestmark = pytest.mark.e2e

CHUNK = 1 << 20


def _wait_for_access_lines(cluster: Cluster, method: str, part: str, count: int) -> list[int]:
    """Replicas flush access lines within 0.1 s; wait until `count` requests are logged."""
    deadline = time.monotonic() + 10
    while True:
        served = cluster.served_by(method, part)
        if len(served) >= count or time.monotonic() > deadline:
            return served
        time.sleep(0.05)


def test_the_chunks_of_one_upload_spread_over_the_replicas(cluster: Cluster) -> None:
    push = ChunkedPush(cluster, "tester/cluster/chunked", random_blob(6 * CHUNK + 123))
    push.start()
    for _ in range(6):
        push.patch(CHUNK)
    push.finish()  # the last 123 bytes ride on the PUT
    assert push.pulled() == push.data
    served = _wait_for_access_lines(cluster, "PATCH", push.upload_id, 6)
    assert len(served) == 6
    # Round robin with no stickiness: every replica took some of the chunks, and so continued
    # a session another replica had begun, with the hash of the bytes before its chunk.
    assert set(served) == {r.index for r in cluster.replicas}, served


@pytest.fixture(params=["s3", "file"])
def own_cluster(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    cluster_backends: tuple[PostgresServer, SeaweedFS],
) -> Iterator[Cluster]:
    """A cluster of the test's own (it kills a replica), on either blob store: S3 keeps an
    upload's state in its row, the shared folder in the partial file."""
    postgres, s3 = cluster_backends
    store = s3 if request.param == "s3" else None
    with running_cluster(tmp_path / "cluster", postgres, s3=store) as running:
        yield running


def _bytes_received(replica: Replica) -> int:
    """What the replica's open connections have received so far (the kernel's tcp_info)."""
    listing = subprocess.run(
        ["ss", "-tinH", "state", "established", f"( sport = :{replica.port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(int(n) for n in re.findall(r"bytes_received:(\d+)", listing))


def _serving(cluster: Cluster, before: dict[int, int], at_least: int) -> Replica:
    """The replica whose connections took the hanging chunk's first bytes since `before`."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        grown = {r.index: _bytes_received(r) - before[r.index] for r in cluster.replicas}
        index, most = max(grown.items(), key=lambda item: item[1])
        if most >= at_least:
            return cluster.replicas[index]
        time.sleep(0.05)
    raise AssertionError(f"no replica read the chunk: {grown}")


def test_a_push_survives_the_kill_of_the_replica_taking_its_chunk(own_cluster: Cluster) -> None:
    cluster = own_cluster
    push = ChunkedPush(cluster, "tester/cluster/killed", random_blob(8 * CHUNK))
    push.start()
    push.patch(CHUNK)
    push.patch(CHUNK)
    acknowledged = push.sent

    before = {r.index: _bytes_received(r) for r in cluster.replicas}
    push.patch_partly(2 * CHUNK, first=CHUNK)
    victim = _serving(cluster, before, at_least=CHUNK // 2)
    victim.kill()
    push.abandon_partial()

    # The session's offset is in the database: whichever replica answers knows it, and the
    # bytes the dead replica took without acknowledging them are not counted.
    assert push.resume() == acknowledged
    survivors = {r.index for r in cluster.replicas} - {victim.index}
    later = 0
    while push.sent < len(push.data) - CHUNK:
        push.patch(CHUNK)  # round robin still names the dead replica: nginx moves on
        later += 1
    push.finish()
    assert push.pulled() == push.data

    patches = _wait_for_access_lines(cluster, "PATCH", push.upload_id, 2 + later)
    assert sum(1 for index in patches if index in survivors) >= later
    assert set(_wait_for_access_lines(cluster, "PUT", push.upload_id, 1)) <= survivors
    # nginx's own log shows requests that met the dead replica first and went on to another.
    retried = [row for row in cluster.nginx.upstreams() if ", " in row[2]]
    assert retried, cluster.nginx.upstreams()
    assert all(row[2].split(", ")[0] == victim.address for row in retried)
