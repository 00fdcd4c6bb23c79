"""`docker push` and `docker pull` against the cluster: tests/e2e/test_docker.py, through nginx."""

import pytest

from tests.e2e.test_docker import (
    first_push,
    image_one,
    logged_in,
    shared_files,
    test_first_push_uploads_every_layer,
    test_pull_after_rmi_restores_the_same_image,
    test_pull_by_digest_gives_the_same_image,
    test_pushing_again_finds_every_layer_already_there,
    test_second_repository_reuses_layers_pushed_to_the_first,
)

__all__ = [
    "first_push",
    "image_one",
    "logged_in",
    "shared_files",
    "test_first_push_uploads_every_layer",
    "test_pull_after_rmi_restores_the_same_image",
    "test_pull_by_digest_gives_the_same_image",
    "test_pushing_again_finds_every_layer_already_there",
    "test_second_repository_reuses_layers_pushed_to_the_first",
]

pytestmark = pytest.mark.e2e
