"""`skopeo copy` between the registry and OCI layout directories, single images and multi-arch."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.oci_layout import OCI_INDEX, Descriptor, OciLayout, random_layers, sha256_digest
from tests.e2e.tools import Registry, creds, require_tool, run

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Source:
    """An OCI layout holding a single image (tag `single`) and a two-platform index (`multi`)."""

    layout: OciLayout
    single: Descriptor
    index: Descriptor
    amd64: Descriptor
    arm64: Descriptor


class Skopeo:
    def __init__(self, registry: Registry, workdir: Path) -> None:
        self.registry = registry
        # Credentials only ever come from flags; nothing is read from or written to ~/.
        self.env = dict(os.environ, REGISTRY_AUTH_FILE=str(workdir / "auth.json"))

    def _run(self, *args: str, arch: str | None = None) -> str:
        # --override-arch picks which platform of an index a single-image copy takes.
        platform = ["--override-arch", arch] if arch else []
        return run(["skopeo", "--insecure-policy", *platform, *args], env=self.env).stdout

    def _side(self, side: str) -> list[str]:
        flags = [f"--{side}-tls-verify=false"]
        login = creds(self.registry)
        if login is not None:
            flags.append(f"--{side}-creds={login}")
        return flags

    def push(self, source: str, repository: str, *flags: str) -> None:
        """Copy into the registry; digests must be kept exactly (no conversion)."""
        target = f"docker://{self.registry.address}/{repository}"
        self._run("copy", "--preserve-digests", *self._side("dest"), *flags, source, target)

    def pull(self, repository: str, destination: str, *flags: str, arch: str | None = None) -> None:
        source = f"docker://{self.registry.address}/{repository}"
        self._run(
            "copy", "--preserve-digests", *self._side("src"), *flags, source, destination, arch=arch
        )

    def raw_manifest(self, repository: str) -> bytes:
        flags = ["--tls-verify=false"]
        login = creds(self.registry)
        if login is not None:
            flags.append(f"--creds={login}")
        target = f"docker://{self.registry.address}/{repository}"
        return self._run("inspect", "--raw", *flags, target).encode()


@pytest.fixture(scope="module")
def skopeo(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Skopeo:
    require_tool("skopeo")
    return Skopeo(registry, tmp_path_factory.mktemp("skopeo"))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    layout = OciLayout(tmp_path_factory.mktemp("skopeo-source"))
    seed = os.urandom(16)
    single = layout.add_image(random_layers(2, 50_000, seed + b"single"), "amd64")
    amd64 = layout.add_image(random_layers(2, 30_000, seed + b"amd64"), "amd64")
    arm64 = layout.add_image(random_layers(1, 30_000, seed + b"arm64"), "arm64")
    index = layout.add_index([amd64, arm64])
    layout.tag(single, "single")
    layout.tag(index, "multi")
    return Source(layout, single, index, amd64, arm64)


def assert_image_blobs_equal(copied: OciLayout, original: OciLayout, manifest_digest: str) -> None:
    manifest = original.read_json(manifest_digest)
    assert copied.read_blob(manifest_digest) == original.read_blob(manifest_digest)
    for blob in [manifest["config"], *manifest["layers"]]:
        assert copied.read_blob(blob["digest"]) == original.read_blob(blob["digest"])


def test_single_image_round_trip_keeps_every_digest(
    skopeo: Skopeo, source: Source, tmp_path: Path
) -> None:
    skopeo.push(f"oci:{source.layout.root}:single", "tester/e2e/skopeo-single:v1")

    raw = skopeo.raw_manifest("tester/e2e/skopeo-single:v1")
    assert sha256_digest(raw) == source.single.digest

    out = OciLayout(tmp_path / "out")
    skopeo.pull("tester/e2e/skopeo-single:v1", f"oci:{out.root}:v1")

    assert out.resolve("v1").digest == source.single.digest
    assert_image_blobs_equal(out, source.layout, source.single.digest)


def test_multi_arch_index_round_trip_with_all_keeps_every_digest(
    skopeo: Skopeo, source: Source, tmp_path: Path
) -> None:
    skopeo.push(f"oci:{source.layout.root}:multi", "tester/e2e/skopeo-multi:v1", "--all")

    raw = skopeo.raw_manifest("tester/e2e/skopeo-multi:v1")
    assert sha256_digest(raw) == source.index.digest
    served = json.loads(raw)
    assert served["mediaType"] == OCI_INDEX
    platforms = {m["platform"]["architecture"]: m["digest"] for m in served["manifests"]}
    assert platforms == {"amd64": source.amd64.digest, "arm64": source.arm64.digest}

    out = OciLayout(tmp_path / "out")
    skopeo.pull("tester/e2e/skopeo-multi:v1", f"oci:{out.root}:v1", "--all")

    copied = out.resolve("v1")
    assert copied.media_type == OCI_INDEX
    assert copied.digest == source.index.digest
    for child in (source.amd64, source.arm64):
        assert_image_blobs_equal(out, source.layout, child.digest)


def test_each_platform_of_a_pushed_index_can_be_copied_alone(
    skopeo: Skopeo, source: Source, tmp_path: Path
) -> None:
    skopeo.push(f"oci:{source.layout.root}:multi", "tester/e2e/skopeo-platforms:v1", "--all")

    for arch, child in (("amd64", source.amd64), ("arm64", source.arm64)):
        by_tag = OciLayout(tmp_path / f"{arch}-by-tag")
        skopeo.pull("tester/e2e/skopeo-platforms:v1", f"oci:{by_tag.root}:{arch}", arch=arch)
        assert by_tag.resolve(arch).digest == child.digest

        by_digest = OciLayout(tmp_path / f"{arch}-by-digest")
        skopeo.pull(f"tester/e2e/skopeo-platforms@{child.digest}", f"oci:{by_digest.root}:{arch}")
        assert by_digest.resolve(arch).digest == child.digest
        assert_image_blobs_equal(by_digest, source.layout, child.digest)
