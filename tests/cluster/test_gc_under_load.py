"""GC looping on one replica while pushes and pulls go through nginx to all of them: every image
that is held pulls back whole, while what nothing holds any more is collected meanwhile."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.backends.cluster import Cluster, running_cluster
from tests.backends.postgres import PostgresServer
from tests.backends.seaweedfs import SeaweedFS
from tests.cluster.calls import Image, basic, pulls_back_whole, push_image

pytestmark = pytest.mark.e2e

ROUNDS = 12
COLLECTOR = 0
# The grace period must outlast a push's blobs-then-manifest (seconds on a loaded machine).
GC_REPLICA = {
    "BEAKERD_GC_INTERVAL_SECONDS": "0.2",
    "BEAKERD_GC_GRACE_SECONDS": "15",
    "BEAKERD_GC_UNTAGGED_MANIFESTS": "true",
}


def _collected_something(cluster: Cluster) -> bool:
    return "gc: removed" in cluster.replicas[COLLECTOR].log()


def test_images_pull_back_whole_while_one_replica_collects_garbage(
    tmp_path: Path, cluster_backends: tuple[PostgresServer, SeaweedFS]
) -> None:
    postgres, s3 = cluster_backends
    with running_cluster(
        tmp_path / "cluster",
        postgres,
        s3=s3,
        env={"BEAKERD_GC_INTERVAL_SECONDS": "0"},  # the others never collect
        replica_env={COLLECTOR: GC_REPLICA},
    ) as cluster:
        auth = basic(cluster.username, cluster.password or "")
        kept: list[Image] = []
        churned: Image | None = None
        for i in range(ROUNDS):
            kept.append(
                push_image(cluster.url, auth, f"tester/gc/keep{i % 3}", f"v{i}", [3000, 70_000])
            )
            # Moving one tag leaves the image it named unheld: GC's work, during the pushes.
            churned = push_image(cluster.url, auth, "tester/gc/churn", "moving", [50_000])
            for image in kept[-3:]:
                assert pulls_back_whole(cluster.url, auth, image), image.tag
            time.sleep(0.2)
        deadline = time.monotonic() + 90
        while not _collected_something(cluster) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _collected_something(cluster), cluster.replicas[COLLECTOR].log()[-3000:]
        for image in [*kept, churned]:
            assert image is not None and pulls_back_whole(cluster.url, auth, image), image
        # Pushes and pulls reached every replica, the collector among them.
        assert all(r.access_lines() for r in cluster.replicas)
