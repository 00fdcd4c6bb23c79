"""The pull-through cache across replicas: two clients missing the same cold blob through nginx,
on two replicas, cause one upstream fetch between them; a replica killed mid-fetch has its
claim taken over (registry/blob_fetches.py, storage/fill_claims.py)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.backends.cluster import Cluster, running_cluster
from tests.backends.postgres import PostgresServer
from tests.backends.seaweedfs import SeaweedFS
from tests.cluster.calls import OCI_MANIFEST, basic, call, sha256
from tests.e2e.conftest import ReferenceRegistry, running_reference_registry
from tests.e2e.tools import require_tool

pytestmark = pytest.mark.e2e

LAYER_BYTES = 100 << 20


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[ReferenceRegistry]:
    require_tool("docker-registry")
    (tmp_path / "upstream").mkdir()
    with running_reference_registry(tmp_path / "upstream", access_log=True) as registry:
        yield registry


@pytest.fixture
def caching_cluster(
    tmp_path: Path,
    cluster_backends: tuple[PostgresServer, SeaweedFS],
    upstream: ReferenceRegistry,
) -> Iterator[Cluster]:
    postgres, s3 = cluster_backends
    config = tmp_path / "beakerd.yml"
    config.write_text(yaml.safe_dump({"upstreams": [{"name": "hub", "url": upstream.url}]}))
    env = {"BEAKERD_CONFIG": str(config)}
    with running_cluster(tmp_path / "cluster", postgres, env=env, s3=s3) as cluster:
        yield cluster


def _push_upstream(upstream: ReferenceRegistry, repository: str, layer: bytes) -> str:
    """An image of one layer in the reference registry (POST, then PUT: it takes no
    monolithic POST); the layer's digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    for blob in (config, layer):
        start = urllib.request.Request(
            f"{upstream.url}/v2/{repository}/blobs/uploads/", b"", method="POST"
        )
        started = urllib.request.urlopen(start, timeout=60)
        location = urllib.parse.urljoin(upstream.url, started.headers["Location"])
        separator = "&" if "?" in location else "?"
        # Not urllib's default form type: the registry would read the body as a form.
        put = urllib.request.Request(
            f"{location}{separator}digest={sha256(blob)}", blob, method="PUT",
            headers={"Content-Type": "application/octet-stream"},
        )  # fmt: skip
        assert urllib.request.urlopen(put, timeout=120).status == 201
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(layer), "size": len(layer)}],
    }).encode()  # fmt: skip
    request = urllib.request.Request(
        f"{upstream.url}/v2/{repository}/manifests/v1", manifest, method="PUT",
        headers={"Content-Type": OCI_MANIFEST},
    )  # fmt: skip
    assert urllib.request.urlopen(request, timeout=60).status == 201
    return sha256(layer)


def _upstream_gets(upstream: ReferenceRegistry, path_part: str) -> int:
    pattern = re.compile(r'"GET (\S*)')
    text = upstream.log_path.read_text(errors="replace")
    return sum(1 for match in pattern.finditer(text) if path_part in match[1])


def test_two_clients_on_two_replicas_missing_one_blob_cause_one_upstream_fetch(
    caching_cluster: Cluster, upstream: ReferenceRegistry
) -> None:
    cluster = caching_cluster
    layer = os.urandom(LAYER_BYTES)
    digest = _push_upstream(upstream, "big/cold", layer)
    auth = basic(cluster.username, cluster.password or "")
    status, _ = call(f"{cluster.url}/v2/hub/big/cold/manifests/v1", auth=auth)
    assert status == 200

    def pull(_: int) -> bytes:
        status, body = call(f"{cluster.url}/v2/hub/big/cold/blobs/{digest}", auth=auth)
        assert status == 200, body[:500]
        return bytes(body)

    with ThreadPoolExecutor(2) as pool:
        bodies = list(pool.map(pull, range(2)))

    assert bodies == [layer, layer]
    # Logs are written after the responses: give them a moment.
    for _ in range(100):
        served = cluster.served_by("GET", f"/blobs/{digest}")
        if len(served) == 2 and _upstream_gets(upstream, f"/blobs/{digest}"):
            break
        time.sleep(0.05)
    # Round robin sent the two misses to two replicas (else this proves nothing).
    assert len(set(served)) == 2, served
    assert _upstream_gets(upstream, f"/blobs/{digest}") == 1


class _StallingUpstream(ThreadingHTTPServer):
    """An upstream whose first blob GET sends a part and then stalls (its fetching replica is
    killed meanwhile); later GETs send the whole blob."""

    def __init__(self, blob: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _StallingHandler)
        self.blob = blob
        self.blob_gets = 0
        self.first_began = threading.Event()
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _StallingHandler(BaseHTTPRequestHandler):
    server: _StallingUpstream

    def do_GET(self) -> None:
        if "/blobs/" not in self.path:
            self.send_error(404)
            return
        self.server.blob_gets += 1
        first = self.server.blob_gets == 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.server.blob)))
        self.end_headers()
        half = len(self.server.blob) // 2
        with contextlib.suppress(OSError):  # the killed replica's connection
            self.wfile.write(self.server.blob[:half])
            self.wfile.flush()
            if first:
                self.server.first_began.set()
                self.server.release.wait(120)
            self.wfile.write(self.server.blob[half:])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stalling_upstream() -> Iterator[_StallingUpstream]:
    upstream = _StallingUpstream(os.urandom(8 << 20))
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    try:
        yield upstream
    finally:
        upstream.release.set()
        upstream.shutdown()
        upstream.server_close()


def test_a_replica_killed_mid_fetch_has_its_claim_taken_over(
    tmp_path: Path,
    cluster_backends: tuple[PostgresServer, SeaweedFS],
    stalling_upstream: _StallingUpstream,
) -> None:
    postgres, s3 = cluster_backends
    config = tmp_path / "beakerd.yml"
    config.write_text(
        yaml.safe_dump({"upstreams": [{"name": "hub", "url": stalling_upstream.url}]})
    )
    env = {"BEAKERD_CONFIG": str(config)}
    blob = stalling_upstream.blob
    path = f"/v2/hub/some/image/blobs/{sha256(blob)}"
    with running_cluster(tmp_path / "cluster", postgres, env=env, s3=s3) as cluster:
        auth = basic(cluster.username, cluster.password or "")
        doomed, survivor = cluster.replicas[0], cluster.replicas[1]
        with ThreadPoolExecutor(2) as pool:
            cut_short = pool.submit(call, doomed.url + path, auth=auth)
            assert stalling_upstream.first_began.wait(60)
            waiting = pool.submit(call, survivor.url + path, auth=auth)
            time.sleep(2.0)
            # The survivor waits on the live claim rather than fetching the blob again.
            assert stalling_upstream.blob_gets == 1
            assert not waiting.done()
            doomed.kill()  # mid-fetch, holding the claim: no more heartbeats
            with contextlib.suppress(OSError, http.client.HTTPException):
                cut_short.result()  # its client sees the connection cut
            status, body = waiting.result()

        assert status == 200
        assert body == blob
        assert stalling_upstream.blob_gets == 2
