"""`podman push` / `podman pull` against the registry, podman storage in a temporary folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.oci_layout import OciLayout, random_layers
from tests.e2e.tools import Registry, creds, require_root, require_tool, run

pytestmark = pytest.mark.e2e


class Podman:
    """podman with private storage: vfs (no overlay mounts), cgroupfs, file events, no systemd."""

    def __init__(self, root: Path, registry: Registry) -> None:
        self.registry = registry
        self.base = [
            "podman",
            "--root", str(root / "storage"),
            "--runroot", str(root / "run"),
            "--tmpdir", str(root / "libpod-tmp"),
            "--storage-driver", "vfs",
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
        ]  # fmt: skip
        (root / "tmp").mkdir()
        (root / "auth.json").write_text('{"auths": {}}')  # podman insists the file exists
        # TMPDIR: where podman stages layers (default /var/tmp); auth file: never the user's.
        self.env = dict(
            os.environ, TMPDIR=str(root / "tmp"), REGISTRY_AUTH_FILE=str(root / "auth.json")
        )

    def __call__(self, *args: str) -> str:
        return run([*self.base, *args], env=self.env).stdout.strip()

    def remote(self, command: str, *args: str) -> str:
        """A push or pull: plain HTTP to the registry, with the test credentials if it has any."""
        flags = ["--tls-verify=false"]
        login = creds(self.registry)
        if login is not None:
            flags.append(f"--creds={login}")
        return self(command, *flags, *args)

    def image_id(self, reference: str) -> str:
        return self("image", "inspect", "--format", "{{.Id}}", reference)

    def exists(self, reference: str) -> bool:
        answer = run([*self.base, "image", "exists", reference], env=self.env, check=False)
        return answer.returncode == 0


@pytest.fixture(scope="module")
def podman(registry: Registry) -> Iterator[Podman]:
    require_tool("podman")
    require_root("podman with vfs storage")
    root = Path(tempfile.mkdtemp(prefix="e2e-podman-"))
    try:
        yield Podman(root, registry)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_push_rmi_pull_gives_back_the_same_image(
    podman: Podman, registry: Registry, tmp_path: Path
) -> None:
    layout = OciLayout(tmp_path / "layout")
    image = layout.add_image(random_layers(2, 40_000, os.urandom(16)))
    layout.tag(image, "v1")
    # `podman pull` ends its output with the ID of the image it stored.
    image_id = podman("pull", f"oci:{layout.root}:v1").splitlines()[-1]
    # podman's image ID is the config digest: the same bytes the layout holds.
    assert f"sha256:{image_id}" == layout.read_json(image.digest)["config"]["digest"]

    reference = f"{registry.address}/tester/e2e/podman:v1"
    podman("tag", image_id, reference)
    digest_file = tmp_path / "digest"
    podman.remote("push", "--digestfile", str(digest_file), reference)
    pushed_digest = digest_file.read_text().strip()

    podman("rmi", "--force", image_id)
    assert not podman.exists(reference)

    podman.remote("pull", reference)

    assert podman.image_id(reference) == image_id
    assert podman("image", "inspect", "--format", "{{.Digest}}", reference) == pushed_digest


def test_podman_login_stores_credentials_that_later_pushes_use(
    podman: Podman, registry: Registry, tmp_path: Path
) -> None:
    if registry.password is None:
        pytest.skip("the registry under test has no login")
    wrong = run(
        [*podman.base, "login", "--tls-verify=false", "-u", registry.username,
         "-p", "not-the-token", registry.address],
        env=podman.env, check=False,
    )  # fmt: skip
    assert wrong.returncode != 0
    login = podman("login", "--tls-verify=false", "-u", registry.username,
                   "-p", registry.password, registry.address)  # fmt: skip
    assert "Login Succeeded" in login
    layout = OciLayout(tmp_path / "layout")
    layout.tag(layout.add_image(random_layers(1, 10_000, os.urandom(16))), "v1")
    image_id = podman("pull", f"oci:{layout.root}:v1").splitlines()[-1]
    reference = f"{registry.address}/{registry.username}/podman-login:v1"
    podman("tag", image_id, reference)
    # No --creds: the stored login answers the registry's challenge.
    podman("push", "--tls-verify=false", reference)
    podman("logout", registry.address)
