"""Fixtures of the cluster tests: three replicas on one PostgreSQL database and one S3 bucket
(SeaweedFS), nginx in front.

`cluster` is one cluster for the session, which the client suites (conformance, docker,
skopeo, beaker-py) share through the names the end-to-end tests ask for (`registry`,
`beakerd_server`, `server`); tests that kill a replica or loop GC start their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.backends.cluster import Cluster, running_cluster
from tests.backends.postgres import PostgresServer
from tests.backends.seaweedfs import SeaweedFS
from tests.e2e.conftest import dockerd  # the session's private Docker engine
from tests.e2e.tools import require_tool

__all__ = ["dockerd"]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def cluster_backends(
    postgres_server: PostgresServer, s3_credentials: SeaweedFS
) -> tuple[PostgresServer, SeaweedFS]:
    """What replicas share: the session's PostgreSQL and SeaweedFS (nginx is needed too)."""
    require_tool("nginx")
    return postgres_server, s3_credentials


@pytest.fixture(scope="session")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    cluster_backends: tuple[PostgresServer, SeaweedFS],
) -> Iterator[Cluster]:
    postgres, s3 = cluster_backends
    with running_cluster(tmp_path_factory.mktemp("cluster"), postgres, s3=s3) as running:
        yield running


@pytest.fixture(scope="session")
def registry(cluster: Cluster) -> Cluster:
    return cluster


@pytest.fixture(scope="session")
def beakerd_server(cluster: Cluster) -> Cluster:
    return cluster
