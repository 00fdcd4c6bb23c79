"""`skopeo copy --all` of a multi-platform index against the cluster, through nginx."""

import pytest

from tests.e2e.test_skopeo import (
    skopeo,
    source,
    test_each_platform_of_a_pushed_index_can_be_copied_alone,
    test_multi_arch_index_round_trip_with_all_keeps_every_digest,
)

__all__ = [
    "skopeo",
    "source",
    "test_each_platform_of_a_pushed_index_can_be_copied_alone",
    "test_multi_arch_index_round_trip_with_all_keeps_every_digest",
]

pytestmark = pytest.mark.e2e
