"""The one SeaweedFS both registries of the S3 benchmark share, and what the bench does to it.

SeaweedFS itself is started by the tests' launcher (`tests/backends/seaweedfs.py`: ports,
telemetry off, GOMEMLIMIT, credentials). Here: a bucket per registry, removing a finished
run's blobs (every key that names the digest, whatever the registry's layout) and compacting
the volumes, so that a run of 1 GiB pushes needs room for a few blobs rather than all of them.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.backends.seaweedfs import SeaweedFS

# A 1 GiB blob can take twice its size while a push completes (the reference's staged upload,
# then its copy at its content address); SeaweedFS wants volumes to spare beyond that.
ROOM_PER_BLOB = 3


def start_seaweedfs(folder: Path, memory_limit: str) -> SeaweedFS:
    """`weed server -s3` in `folder`, its default bucket made; stop it with `.stop()`."""
    try:
        from tests.backends.seaweedfs import SeaweedFS
    except ImportError as error:
        raise RuntimeError(
            "tests/backends/seaweedfs.py (the SeaweedFS launcher) is missing: "
            "this bench needs the S3 blob store's branch merged"
        ) from error
    return SeaweedFS(folder, memory_limit=memory_limit).start()


class BucketAdmin:
    """Signed S3 calls the bench makes itself: making buckets, dropping finished blobs."""

    def __init__(self, store: SeaweedFS) -> None:
        import botocore.session
        from botocore.config import Config

        self.store = store
        self._client: Any = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=store.endpoint,
            aws_access_key_id=store.access_key,
            aws_secret_access_key=store.secret_key,
            region_name=store.region,
            # Plain http: no CA bundle is read (the machine's AWS_CA_BUNDLE does not apply).
            verify=False,
            config=Config(retries={"max_attempts": 3}, read_timeout=300),
        )

    def close(self) -> None:
        self._client.close()

    def make_bucket(self, bucket: str) -> None:
        existing = {b["Name"] for b in self._client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            self._client.create_bucket(Bucket=bucket)

    def delete_blob(self, bucket: str, digest: str) -> int:
        """Delete every object whose key holds `digest`'s hex (its data, the reference's link
        files), and every object beakerd completed at its session's key (`blobs/by-upload/`,
        named only by its row) but the newest; returns how many. The registry is not told: the
        bench never asks for those again (it pulls the newest push only)."""
        hex_ = digest.partition(":")[2]
        objects = self._objects(bucket)
        by_upload = sorted(
            (item for item in objects if "/by-upload/" in item["Key"]),
            key=lambda item: item["LastModified"],
        )[:-1]
        keys = [item["Key"] for item in objects if hex_ in item["Key"]]
        keys += [item["Key"] for item in by_upload]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            self._client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def _objects(self, bucket: str) -> list[dict[str, Any]]:
        objects: list[dict[str, Any]] = []
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            objects.extend(page.get("Contents", []))
        return objects

    def compact(self) -> None:
        """Ask the master to vacuum every volume with any garbage: deleted bytes stay on disk
        until then."""
        url = f"http://127.0.0.1:{self.store.ports['master.port']}/vol/vacuum?garbageThreshold=0.01"
        with urllib.request.urlopen(url, timeout=600) as response:
            json.loads(response.read() or b"{}")
