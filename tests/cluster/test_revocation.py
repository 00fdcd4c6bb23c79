"""What one replica revokes, every replica refuses within a second: registry credentials hang on
an API token or a Beaker image, and each replica caches that they still stand (registry/auth.py)
until the shared change counter moves (storage/generation_row.py)."""

from __future__ import annotations

import time

import pytest

from tests.backends.cluster import Cluster, Replica
from tests.cluster.calls import basic, call

pytestmark = pytest.mark.e2e

# What the issue asks of a revocation: stopped everywhere within this long.
PROPAGATION_SECONDS = 1.0


def _admin(cluster: Cluster) -> str:
    return f"Bearer {cluster.password}"


def _refused_everywhere_within(
    replicas: list[Replica], path: str, auth: str, seconds: float
) -> dict[int, float]:
    """Ask every replica directly until each refuses, for at most `seconds`; how long each
    replica that refused took."""
    started = time.monotonic()
    refused: dict[int, float] = {}
    while len(refused) < len(replicas) and time.monotonic() - started <= seconds:
        for replica in replicas:
            if replica.index not in refused and call(replica.url + path, auth=auth)[0] == 401:
                refused[replica.index] = time.monotonic() - started
        time.sleep(0.01)
    return refused


def _accepted_everywhere(replicas: list[Replica], path: str, auth: str) -> None:
    for replica in replicas:
        # Twice: the second answer comes from the replica's cache of what is live.
        for _ in range(2):
            assert call(replica.url + path, auth=auth)[0] == 200, replica.index


def test_a_token_revoked_through_one_replica_is_refused_by_every_replica(
    cluster: Cluster,
) -> None:
    status, token = call(
        cluster.url + "/api/v3/user/tokens", "POST", _admin(cluster), {"description": "doomed"}
    )
    assert status == 200, token
    scope = "repository:tester/cluster/revoked:pull,push"
    status, issued = call(
        f"{cluster.url}/v2/token?service=beakerd&scope={scope}",
        auth=basic(cluster.username, token["token"]),
    )
    assert status == 200
    bearer = f"Bearer {issued['token']}"
    # Signed by whichever replica answered, valid on all: they share one key.
    _accepted_everywhere(cluster.replicas, "/v2/", bearer)

    revoker = cluster.replicas[0]
    status, _ = call(f"{revoker.url}/api/v3/user/tokens/{token['id']}", "DELETE", _admin(cluster))
    assert status == 204
    refused = _refused_everywhere_within(cluster.replicas, "/v2/", bearer, PROPAGATION_SECONDS)
    assert sorted(refused) == [r.index for r in cluster.replicas], refused


def test_credentials_of_an_image_deleted_through_one_replica_stop_on_every_replica(
    cluster: Cluster,
) -> None:
    status, image = call(
        cluster.url + "/api/v3/images?name=cluster-doomed", "POST", _admin(cluster), {}
    )
    assert status == 200, image
    status, repo = call(
        f"{cluster.url}/api/v3/images/{image['id']}/repository?upload=true",
        auth=_admin(cluster),
    )
    assert status == 200, repo
    repository = repo["imageTag"].split("/", 1)[1]
    credential = basic(repo["auth"]["user"], repo["auth"]["password"])
    path = f"/v2/{repository}/tags/list"
    for replica in cluster.replicas:
        # Nothing pushed yet: NAME_UNKNOWN, but past authentication, and the liveness cached.
        for _ in range(2):
            assert call(replica.url + path, auth=credential)[0] in (200, 404), replica.index

    deleter = cluster.replicas[1]
    status, _ = call(f"{deleter.url}/api/v3/images/{image['id']}", "DELETE", _admin(cluster))
    assert status in (200, 204)
    refused = _refused_everywhere_within(cluster.replicas, path, credential, PROPAGATION_SECONDS)
    assert sorted(refused) == [r.index for r in cluster.replicas], refused
