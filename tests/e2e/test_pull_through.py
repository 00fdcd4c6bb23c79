"""Pulling through beakerd's cache with docker, skopeo and podman, from real upstreams on
loopback: the reference registry (its access log counts what the cache fetched), one of them
stopped mid-test, and two clients pulling the same cold 200 MiB image at once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.backends.backend import Backend
from tests.e2e.conftest import ReferenceRegistry, running_reference_registry
from tests.e2e.docker_engine import DockerEngine
from tests.e2e.oci_layout import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    OciLayout,
    canonical_json,
    random_layers,
)
from tests.e2e.test_podman import Podman
from tests.e2e.tools import creds, require_root, require_tool, run
from tests.server import Server, running_beakerd

pytestmark = pytest.mark.e2e

BIG_LAYER_BYTES = 200 << 20


@dataclass(frozen=True)
class PullThroughSetup:
    cache: Server
    hub: ReferenceRegistry  # `hub/...` in the cache, tags trusted for the default TTL
    flaky: ReferenceRegistry  # `flaky/...`, tags re-checked on every pull; stopped by a test


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, session_backend: Backend
) -> Iterator[PullThroughSetup]:
    require_tool("docker-registry")
    root = tmp_path_factory.mktemp("pull-through")
    (root / "hub").mkdir()
    (root / "flaky").mkdir()
    with (
        running_reference_registry(root / "hub", access_log=True) as hub,
        running_reference_registry(root / "flaky", access_log=True) as flaky,
    ):
        config = root / "beakerd.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "upstreams": [
                        {"name": "hub", "url": hub.url},
                        {"name": "flaky", "url": flaky.url, "tag_ttl_seconds": 0},
                    ]
                }
            )
        )
        args = [*session_backend.args(), "--config", str(config), "--log-level", "info"]
        with running_beakerd(root / "cache", args) as cache:
            yield PullThroughSetup(cache, hub, flaky)


def skopeo(*args: str) -> str:
    return run(["skopeo", "--insecure-policy", *args]).stdout


def seed(upstream: ReferenceRegistry, layout: OciLayout, tag: str, repository: str) -> None:
    """Copy `layout`'s `tag` into the upstream, digests kept."""
    skopeo(
        "copy", "--preserve-digests", "--dest-tls-verify=false",
        f"oci:{layout.root}:{tag}", f"docker://{upstream.address}/{repository}:{tag}",
    )  # fmt: skip


def small_image(tmp_path: Path, tag: str) -> tuple[OciLayout, str]:
    """A two-layer image in an OCI layout; returns it and its config digest (the image ID)."""
    layout = OciLayout(tmp_path / f"layout-{tag}")
    image = layout.add_image(random_layers(2, 30_000, os.urandom(16)))
    layout.tag(image, tag)
    return layout, str(layout.read_json(image.digest)["config"]["digest"])


def fetches(upstream: ReferenceRegistry, path_part: str) -> int:
    """GETs whose path contains `path_part` in the upstream's access log."""
    log = upstream.log_path.read_text(errors="replace")
    return sum(1 for match in re.finditer(r'"GET (\S+)', log) if path_part in match[1])


def cache_creds(cache: Server) -> list[str]:
    login = creds(cache)
    return [f"--src-creds={login}"] if login else []


def test_docker_pulls_through_the_cache(
    setup: PullThroughSetup, dockerd: DockerEngine, tmp_path: Path
) -> None:
    layout, image_id = small_image(tmp_path, "v1")
    seed(setup.hub, layout, "v1", "library/small")
    cache = setup.cache
    assert cache.password is not None
    dockerd.cli(
        "login", "--username", cache.username, "--password-stdin", cache.address,
        input_text=cache.password,
    )  # fmt: skip
    reference = f"{cache.address}/hub/library/small:v1"
    manifest = layout.read_json(layout.resolve("v1").digest)

    output = dockerd.cli("pull", reference).stdout

    assert dockerd.image_id(reference) == image_id, output
    dockerd.cli("rmi", reference)
    dockerd.cli("pull", reference)  # the second pull: all from the cache
    for layer in manifest["layers"]:
        assert fetches(setup.hub, f"/blobs/{layer['digest']}") == 1
    assert "cached hub/library/small@" in cache.log()


def test_skopeo_copies_through_the_cache_byte_for_byte(
    setup: PullThroughSetup, tmp_path: Path
) -> None:
    require_tool("skopeo")
    layout, _ = small_image(tmp_path, "v1")
    seed(setup.hub, layout, "v1", "tools/skopeo")
    destination = tmp_path / "copied"

    skopeo(
        "copy", "--preserve-digests", "--src-tls-verify=false", *cache_creds(setup.cache),
        f"docker://{setup.cache.address}/hub/tools/skopeo:v1", f"dir:{destination}",
    )  # fmt: skip

    manifest = json.loads((destination / "manifest.json").read_bytes())
    assert canonical_json(manifest) == layout.read_blob(layout.resolve("v1").digest)
    for layer in manifest["layers"]:
        hex_digest = layer["digest"].split(":", 1)[1]
        assert (destination / hex_digest).read_bytes() == layout.read_blob(layer["digest"])


def test_podman_pulls_through_the_cache(setup: PullThroughSetup, tmp_path: Path) -> None:
    require_tool("podman")
    require_root("podman with vfs storage")
    layout, image_id = small_image(tmp_path, "v1")
    seed(setup.hub, layout, "v1", "tools/podman")
    root = Path(tempfile.mkdtemp(prefix="e2e-podman-cache-"))
    try:
        podman = Podman(root, setup.cache)
        reference = f"{setup.cache.address}/hub/tools/podman:v1"
        podman.remote("pull", reference)
        assert podman.image_id(reference) == image_id.split(":", 1)[1]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_pull_succeeds_from_the_cache_after_the_upstream_stops(
    setup: PullThroughSetup, tmp_path: Path
) -> None:
    require_tool("skopeo")
    layout, _ = small_image(tmp_path, "v1")
    seed(setup.flaky, layout, "v1", "team/app")
    source = f"docker://{setup.cache.address}/flaky/team/app:v1"
    flags = ["--preserve-digests", "--src-tls-verify=false", *cache_creds(setup.cache)]
    skopeo("copy", *flags, source, f"dir:{tmp_path / 'first'}")

    setup.flaky.proc.terminate()
    setup.flaky.proc.wait()
    skopeo("copy", *flags, source, f"dir:{tmp_path / 'second'}")

    first = (tmp_path / "first" / "manifest.json").read_bytes()
    assert (tmp_path / "second" / "manifest.json").read_bytes() == first
    assert "serving flaky/team/app:v1 from the cache, possibly stale" in setup.cache.log()


def test_two_clients_pulling_one_cold_big_image_cause_one_upstream_fetch(
    setup: PullThroughSetup, tmp_path: Path
) -> None:
    require_tool("skopeo")
    layout = OciLayout(tmp_path / "layout-big")
    # Random bytes under a layer type: skopeo copies blobs as they are, never unpacking them.
    layer = layout.add_blob(os.urandom(BIG_LAYER_BYTES), OCI_LAYER_GZIP)
    config = layout.add_blob(
        canonical_json({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}),
        OCI_CONFIG,
    )
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": config.to_json(), "layers": [layer.to_json()]}  # fmt: skip
    layout.tag(layout.add_blob(canonical_json(manifest), OCI_MANIFEST), "v1")
    seed(setup.hub, layout, "v1", "big/image")
    shutil.rmtree(layout.root)  # the disk holds enough copies of it
    source = f"docker://{setup.cache.address}/hub/big/image:v1"
    manifests_before = fetches(setup.hub, "/big/image/manifests/")
    flags = ["--preserve-digests", "--src-tls-verify=false", *cache_creds(setup.cache)]
    results: list[subprocess.CompletedProcess[str]] = []

    def pull(name: str) -> None:
        results.append(run(["skopeo", "--insecure-policy", "copy", *flags, source,
                            f"dir:{tmp_path / name}"], check=False))  # fmt: skip

    clients = [threading.Thread(target=pull, args=(f"client{i}",)) for i in range(2)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()

    assert all(result.returncode == 0 for result in results), [r.stdout for r in results]
    hex_digest = layer.digest.split(":", 1)[1]
    for i in range(2):
        assert (tmp_path / f"client{i}" / hex_digest).stat().st_size == BIG_LAYER_BYTES
    assert fetches(setup.hub, f"/blobs/{layer.digest}") == 1
    assert fetches(setup.hub, "/big/image/manifests/") - manifests_before == 1
