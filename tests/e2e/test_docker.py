"""The real `docker` CLI (on a private dockerd) pushing to and pulling from the registry."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.docker_engine import DockerEngine, build_scratch_image, layer_ids
from tests.e2e.tools import Registry

pytestmark = pytest.mark.e2e

PUSHED_DIGEST = re.compile(
    r"^(?P<tag>\S+): digest: (?P<digest>sha256:[0-9a-f]{64}) size: \d+$", re.M
)


@dataclass(frozen=True)
class Built:
    reference: str
    image_id: str
    layers: list[str]


def push(engine: DockerEngine, reference: str) -> tuple[str, str]:
    """`docker push`; returns (the output, the manifest digest the push reported)."""
    output = engine.cli("push", reference).stdout
    match = PUSHED_DIGEST.search(output)
    assert match, f"no digest line in push output:\n{output}"
    return output, match["digest"]


def layer_status(output: str, layer: str) -> str:
    """What `docker push` finally said about one layer ("Pushed", "Layer already exists", ...)."""
    statuses = re.findall(rf"^{layer}: (.+)$", output, re.M)
    final = [s for s in statuses if s not in ("Preparing", "Waiting")]
    assert final, f"layer {layer} not reported in push output:\n{output}"
    return str(final[-1]).strip()


@pytest.fixture(scope="module")
def logged_in(dockerd: DockerEngine, registry: Registry) -> None:
    if registry.password is None:
        return
    login = dockerd.cli(
        "login", "--username", registry.username, "--password-stdin", registry.address,
        input_text=registry.password,
    )  # fmt: skip
    assert "Login Succeeded" in login.stdout


@pytest.fixture(scope="module")
def shared_files() -> list[tuple[str, bytes]]:
    """Two files whose layers both images below share; random so each run pushes new blobs."""
    return [("shared-a.bin", os.urandom(40_000)), ("shared-b.bin", os.urandom(20_000))]


@pytest.fixture(scope="module")
def image_one(
    dockerd: DockerEngine,
    registry: Registry,
    logged_in: None,
    shared_files: list[tuple[str, bytes]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Built:
    reference = f"{registry.address}/tester/e2e/one:latest"
    context = tmp_path_factory.mktemp("docker-one")
    image_id = build_scratch_image(dockerd, reference, shared_files, context)
    return Built(reference, image_id, layer_ids(dockerd, reference))


@pytest.fixture(scope="module")
def first_push(dockerd: DockerEngine, image_one: Built) -> tuple[str, str]:
    return push(dockerd, image_one.reference)


def test_first_push_uploads_every_layer(image_one: Built, first_push: tuple[str, str]) -> None:
    output, _ = first_push
    for layer in image_one.layers:
        assert layer_status(output, layer) == "Pushed", output


def test_pushing_again_finds_every_layer_already_there(
    dockerd: DockerEngine, image_one: Built, first_push: tuple[str, str]
) -> None:
    output, digest = push(dockerd, image_one.reference)
    assert "Layer already exists" in output
    for layer in image_one.layers:
        assert layer_status(output, layer) == "Layer already exists", output
    assert digest == first_push[1], "the same image must get the same manifest digest"


def test_second_repository_reuses_layers_pushed_to_the_first(
    dockerd: DockerEngine,
    registry: Registry,
    image_one: Built,
    first_push: tuple[str, str],
    shared_files: list[tuple[str, bytes]],
    tmp_path: Path,
) -> None:
    reference = f"{registry.address}/tester/e2e/two:latest"
    build_scratch_image(
        dockerd, reference, [*shared_files, ("own.bin", os.urandom(10_000))], tmp_path
    )
    layers = layer_ids(dockerd, reference)
    assert layers[:2] == image_one.layers, "the two images must share their first two layers"

    output, _ = push(dockerd, reference)

    for layer in layers[:2]:
        status = layer_status(output, layer)
        assert status in ("Layer already exists", "Mounted from tester/e2e/one"), output
    assert layer_status(output, layers[2]) == "Pushed", output


def test_pull_after_rmi_restores_the_same_image(
    dockerd: DockerEngine, registry: Registry, logged_in: None, tmp_path: Path
) -> None:
    # An image of its own, so no other image keeps its layers or parent chain alive locally.
    reference = f"{registry.address}/tester/e2e/pulled:v1"
    files = [("p1.bin", os.urandom(30_000)), ("p2.bin", os.urandom(5_000))]
    image_id = build_scratch_image(dockerd, reference, files, tmp_path)
    _, digest = push(dockerd, reference)

    dockerd.cli("rmi", reference)
    assert not dockerd.has_image(image_id), "rmi must remove the image entirely"

    pulled = dockerd.cli("pull", reference).stdout
    assert f"Digest: {digest}" in pulled, pulled
    assert "Pull complete" in pulled, pulled
    assert dockerd.image_id(reference) == image_id
    repo_digests = dockerd.client.images.get(reference).attrs["RepoDigests"]
    assert f"{registry.address}/tester/e2e/pulled@{digest}" in repo_digests


def test_pull_by_digest_gives_the_same_image(
    dockerd: DockerEngine, registry: Registry, logged_in: None, tmp_path: Path
) -> None:
    reference = f"{registry.address}/tester/e2e/by-digest:v1"
    image_id = build_scratch_image(dockerd, reference, [("d.bin", os.urandom(8_000))], tmp_path)
    _, digest = push(dockerd, reference)
    dockerd.cli("rmi", reference)
    assert not dockerd.has_image(image_id)

    by_digest = f"{registry.address}/tester/e2e/by-digest@{digest}"
    dockerd.cli("pull", by_digest)

    assert dockerd.image_id(by_digest) == image_id
