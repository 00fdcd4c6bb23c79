"""The OCI conformance suite passes against the cluster, through nginx."""

from tests.test_conformance import test_beakerd_passes_every_oci_conformance_check

__all__ = ["test_beakerd_passes_every_oci_conformance_check"]
