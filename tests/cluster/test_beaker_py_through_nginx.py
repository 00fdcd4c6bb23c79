"""beaker-py 1.x against the cluster: tests/e2e/test_beaker_py.py, through nginx."""

import pytest

from tests.backends.cluster import Cluster
from tests.e2e.test_beaker_py import (
    beaker_py,
    beaker_py_python,
    test_create_uploads_and_commits,
    test_delete_then_the_image_is_not_found,
    test_duplicate_name_is_image_conflict,
    test_get_by_id_full_name_and_bare_name,
    test_list_in_workspace_shows_the_image,
    test_pull_gives_back_the_pushed_image,
    test_rename_keeps_the_id,
    test_the_cli_sees_what_beaker_py_made,
    test_unknown_image_is_image_not_found,
)

__all__ = [
    "beaker_py",
    "beaker_py_python",
    "test_create_uploads_and_commits",
    "test_delete_then_the_image_is_not_found",
    "test_duplicate_name_is_image_conflict",
    "test_get_by_id_full_name_and_bare_name",
    "test_list_in_workspace_shows_the_image",
    "test_pull_gives_back_the_pushed_image",
    "test_rename_keeps_the_id",
    "test_the_cli_sees_what_beaker_py_made",
    "test_unknown_image_is_image_not_found",
]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(cluster: Cluster) -> Cluster:
    return cluster
