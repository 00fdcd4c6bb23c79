"""The seed's walkthrough (`beaker image create`, inspect, pull, rename, delete) against the
cluster: tests/e2e/test_seed.py, with the `beaker` CLI reading the config the bootstrap replica
wrote (its address is nginx's).
"""

from collections.abc import Iterator

import pytest

from tests.backends.cluster import Cluster, running_cluster
from tests.backends.postgres import PostgresServer
from tests.backends.seaweedfs import SeaweedFS
from tests.e2e.test_seed import (
    beaker,
    test_bare_name_resolves_to_the_callers_own_image,
    test_committed_image_refuses_further_pushes,
    test_create_prints_the_push_as_the_seed_shows_it,
    test_delete_removes_the_image,
    test_duplicate_name_is_refused_without_a_new_image,
    test_failures_are_one_error_line,
    test_inspect_by_full_name_and_by_id_show_the_same_image,
    test_inspect_output_keeps_the_seeds_key_order,
    test_list_shows_the_image_in_the_default_workspace,
    test_pull_keeps_beakers_internal_tag,
    test_pull_with_a_friendly_tag_replaces_the_internal_one,
    test_rename_keeps_the_id,
    test_second_image_sharing_layers_reports_them_already_there,
    test_whoami_names_the_bootstrap_account,
    wordcount,
)

__all__ = [
    "beaker",
    "test_bare_name_resolves_to_the_callers_own_image",
    "test_committed_image_refuses_further_pushes",
    "test_create_prints_the_push_as_the_seed_shows_it",
    "test_delete_removes_the_image",
    "test_duplicate_name_is_refused_without_a_new_image",
    "test_failures_are_one_error_line",
    "test_inspect_by_full_name_and_by_id_show_the_same_image",
    "test_inspect_output_keeps_the_seeds_key_order",
    "test_list_shows_the_image_in_the_default_workspace",
    "test_pull_keeps_beakers_internal_tag",
    "test_pull_with_a_friendly_tag_replaces_the_internal_one",
    "test_rename_keeps_the_id",
    "test_second_image_sharing_layers_reports_them_already_there",
    "test_whoami_names_the_bootstrap_account",
    "wordcount",
]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    cluster_backends: tuple[PostgresServer, SeaweedFS],
) -> Iterator[Cluster]:
    """A cluster of this module's own, so that the seed's plain names (`wordcount`) are free."""
    postgres, s3 = cluster_backends
    with running_cluster(tmp_path_factory.mktemp("seed-cluster"), postgres, s3=s3) as running:
        yield running
