"""`beaker image create` and `pull` with no Docker daemon: docker-archive, oci and oci-archive.

Each command runs with DOCKER_HOST pointing at nothing, so an accidental use of the engine fails.
What they write is read back by the real tools: `docker load` and skopeo.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends.backend import Backend
from tests.e2e.docker_engine import DockerEngine, build_scratch_image
from tests.e2e.oci_layout import OciLayout, random_layers
from tests.e2e.tools import require_tool, run
from tests.server import Server, running_beakerd

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
NO_DAEMON = "unix:///nonexistent/docker.sock"
DIGEST_LINE = re.compile(r"^latest: digest: (sha256:[0-9a-f]{64}) size: \d+$", re.M)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, session_backend: Backend) -> Iterator[Server]:
    with running_beakerd(
        tmp_path_factory.mktemp("daemonless-beakerd"), session_backend.args()
    ) as running:
        yield running


def beaker(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEAKER_", "DOCKER_"))}
    env.update(HOME=str(server.home), DOCKER_HOST=NO_DAEMON, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "beakerd.beaker_cli", *args],
        env=env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
    )  # fmt: skip


def ok(server: Server, *args: str) -> str:
    proc = beaker(server, *args)
    assert proc.returncode == 0, f"beaker {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def peak_rss_kib(server: Server, *args: str) -> int:
    """Run `beaker ARGS` under a wrapper process whose only child it is, and return its peak
    resident memory (this test process's own children include servers of other tests)."""
    wrapper = (
        "import resource, subprocess, sys;"
        "done = subprocess.run(sys.argv[1:]);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
        "sys.exit(done.returncode)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEAKER_", "DOCKER_"))}
    env.update(HOME=str(server.home), DOCKER_HOST=NO_DAEMON, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, sys.executable, "-m", "beakerd.beaker_cli", *args],
        env=env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip().splitlines()[-1])


def skopeo_raw(server: Server, reference: str) -> bytes:
    require_tool("skopeo")
    proc = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false",
         "--creds", f"{server.username}:{server.password}", f"docker://{reference}"],
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def internal_tag(server: Server, name: str) -> str:
    """The image's internal `host:port/repository`, as the API names it."""
    request = urllib.request.Request(
        f"{server.url}/api/v3/images/{server.username}%2F{name}",
        headers={"Authorization": f"Bearer {server.password}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return str(json.loads(answer.read())["dockerTag"])


def test_an_oci_layout_index_pushes_whole_and_pulls_back_as_the_same_digests(
    server: Server, tmp_path: Path
) -> None:
    layout = OciLayout(tmp_path / "layout")
    seed = secrets.token_bytes(8)
    amd = layout.add_image(random_layers(2, 50_000, seed + b"a"), "amd64")
    arm = layout.add_image(random_layers(2, 50_000, seed + b"r"), "arm64")
    index = layout.add_index([amd, arm])
    layout.tag(index, "multi")

    output = ok(server, "image", "create", "--name", "multi", f"oci:{layout.root}:multi")
    assert DIGEST_LINE.search(output)[1] == index.digest  # type: ignore[index]
    assert "Pushed" in output and output.rstrip().endswith("Done.")
    tag = internal_tag(server, "multi")
    assert json.loads(skopeo_raw(server, f"{tag}:latest"))["mediaType"].endswith("index.v1+json")

    out = tmp_path / "pulled"
    ok(server, "image", "pull", "multi", "--output", f"oci:{out}")
    pulled = json.loads((out / "index.json").read_text())["manifests"][0]
    assert pulled["digest"] == index.digest
    for child in (amd, arm):
        assert (out / "blobs" / "sha256" / child.digest.split(":")[1]).is_file()
    # skopeo reads the layout we wrote, every platform of it.
    copied = tmp_path / "copied"
    run(["skopeo", "copy", "--all", f"oci:{out}:latest", f"oci:{copied}:latest"])


def test_a_second_push_from_the_same_archive_finds_every_layer_already_there(
    server: Server, tmp_path: Path
) -> None:
    layout = OciLayout(tmp_path / "layout")
    image = layout.add_image(random_layers(3, 20_000, secrets.token_bytes(8)))
    layout.tag(image, "v1")
    archive = tmp_path / "image.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(layout.root, arcname=".")
    first = ok(server, "image", "create", "--name", "arch-one", f"oci-archive:{archive}:v1")
    assert first.count(": Pushed") == 3, first
    second = ok(server, "image", "create", "--name", "arch-two", f"oci-archive:{archive}")
    assert second.count(": Layer already exists") == 3, second
    assert DIGEST_LINE.search(first)[1] == DIGEST_LINE.search(second)[1] == image.digest  # type: ignore[index]


def test_docker_save_pushes_without_the_daemon_and_docker_load_takes_the_pull(
    server: Server, dockerd: DockerEngine, tmp_path: Path
) -> None:
    local = f"daemonless-{secrets.token_hex(4)}:v1"
    files = [("a.bin", os.urandom(30_000)), ("b.bin", os.urandom(10_000))]
    image_id = build_scratch_image(dockerd, local, files, tmp_path / "ctx")
    saved = tmp_path / "saved.tar"
    dockerd.cli("save", "-o", str(saved), local)

    output = ok(server, "image", "create", "--name", "saved", f"docker-archive:{saved}")
    assert output.splitlines()[0].startswith(f"Pushing docker-archive:{saved} as saved (bp_")
    assert output.count(": Pushed") == 2, output

    out = tmp_path / "out.tar"
    pulled = ok(
        server, "image", "pull", "saved", "friendly:v2", "--output", f"docker-archive:{out}"
    )
    assert pulled.rstrip().endswith("Done.")
    dockerd.cli("rmi", "-f", image_id)
    loaded = dockerd.cli("load", "-i", str(out)).stdout
    assert "friendly:v2" in loaded, loaded
    # The same config bytes went through, so Docker sees the very image it saved.
    assert dockerd.image_id("friendly:v2") == image_id
    run(["skopeo", "inspect", f"docker-archive:{out}"])


def test_the_legacy_docker_save_layout_pushes_too(server: Server, tmp_path: Path) -> None:
    """skopeo writes docker-archive in the layout of Docker before 25 (no index.json)."""
    require_tool("skopeo")
    layout = OciLayout(tmp_path / "layout")
    image = layout.add_image(random_layers(2, 20_000, secrets.token_bytes(8)))
    layout.tag(image, "v1")
    legacy = tmp_path / "legacy.tar"
    run(["skopeo", "copy", f"oci:{layout.root}:v1", f"docker-archive:{legacy}:legacy/image:v1"])
    with tarfile.open(legacy) as tar:
        assert "index.json" not in tar.getnames()
    output = ok(server, "image", "create", "--name", "legacy", f"docker-archive:{legacy}")
    assert output.count(": Pushed") == 2, output


def test_bad_sources_fail_with_one_line(server: Server, tmp_path: Path) -> None:
    for source, words in [
        (f"oci:{tmp_path}/absent", "no such directory"),
        (f"docker-archive:{tmp_path}/absent.tar", "no such file"),
        (f"oci:{tmp_path}", "not an OCI image layout"),
    ]:
        proc = beaker(server, "image", "create", "--name", "bad", source)
        assert proc.returncode != 0
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and words in lines[0], proc.stderr
    proc = beaker(server, "image", "pull", "saved", "--output", "tarball:x")
    assert proc.returncode != 0 and "unknown output" in proc.stderr


def test_a_one_gib_layer_goes_up_and_down_in_flat_memory(server: Server, tmp_path: Path) -> None:
    layout_root = tmp_path / "big"
    _add_big_image(OciLayout(layout_root), 1 << 30)
    for args in (
        ("image", "create", "--name", "big", f"oci:{layout_root}"),
        ("image", "pull", "big", "--output", f"docker-archive:{tmp_path / 'big.tar'}"),
    ):
        peak_kib = peak_rss_kib(server, *args)
        assert peak_kib < 150 * 1024, f"beaker {args[1]}: client peak RSS {peak_kib} KiB"
    assert (tmp_path / "big.tar").stat().st_size > 1 << 30


def _add_big_image(layout: OciLayout, size: int) -> None:
    """An image of one `size`-byte uncompressed layer, written and hashed a MiB at a time."""
    staged = layout.root / "big.layer"
    hasher = hashlib.sha256()
    block = os.urandom(1 << 20)
    with staged.open("wb") as f:
        for i in range(size >> 20):
            chunk = hashlib.sha256(i.to_bytes(8, "big")).digest() + block[32:]
            hasher.update(chunk)
            f.write(chunk)
    layer_digest = "sha256:" + hasher.hexdigest()
    staged.rename(layout.blob_path(layer_digest))
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {},
         "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}
    ).encode()  # fmt: skip
    config_d = layout.add_blob(config, "application/vnd.oci.image.config.v1+json")
    manifest = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": config_d.to_json(),
         "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                     "digest": layer_digest, "size": size}]}
    ).encode()  # fmt: skip
    stored = layout.add_blob(manifest, "application/vnd.oci.image.manifest.v1+json")
    layout.tag(stored, "latest")
