"""The OCI conformance suite passes against the cluster, through nginx.

Its replicas stream blobs rather than redirect pulls to S3: the suite follows a redirect and
then asks SeaweedFS's answer for Docker-Content-Digest, which only a registry sends (the same
two SHOULD checks fail on one server with redirects). The other cluster suites use redirects.
"""

from collections.abc import Iterator

import pytest

from tests.backends.cluster import Cluster, running_cluster
from tests.backends.postgres import PostgresServer
from tests.backends.seaweedfs import SeaweedFS
from tests.test_conformance import test_beakerd_passes_every_oci_conformance_check

__all__ = ["test_beakerd_passes_every_oci_conformance_check"]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def beakerd_server(
    tmp_path_factory: pytest.TempPathFactory,
    cluster_backends: tuple[PostgresServer, SeaweedFS],
) -> Iterator[Cluster]:
    postgres, s3 = cluster_backends
    with running_cluster(
        tmp_path_factory.mktemp("conformance-cluster"),
        postgres,
        s3=s3,
        env={"BEAKERD_BLOB_REDIRECT": "false"},
    ) as running:
        yield running
