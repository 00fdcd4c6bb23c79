"""`podman push` and `podman pull` against the cluster, through nginx: blobs come back by a 307
to a presigned S3 URL (the single server's podman tests pull them streamed)."""

import pytest

from tests.e2e.test_podman import podman, test_push_rmi_pull_gives_back_the_same_image

__all__ = ["podman", "test_push_rmi_pull_gives_back_the_same_image"]

pytestmark = pytest.mark.e2e
