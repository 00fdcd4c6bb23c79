"""A private Docker engine (dockerd) for the tests, and a helper to build small images on it.

The engine runs with every directory under one temporary folder and its socket there too, so it
never touches the machine's own Docker (if any) and is removed without a trace afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker

from tests.e2e.tools import run

START_TIMEOUT = 60.0


@dataclass
class DockerEngine:
    """A running dockerd: its socket, the environment for the `docker` CLI, and an SDK client."""

    root: Path
    socket: Path
    env: dict[str, str]
    client: docker.DockerClient
    proc: subprocess.Popen[bytes]
    log_path: Path

    def cli(
        self, *args: str, input_text: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this engine; returns combined stdout+stderr."""
        return run(["docker", *args], env=self.env, input_text=input_text, check=check)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def image_id(self, reference: str) -> str:
        return str(self.client.images.get(reference).id)

    def has_image(self, reference: str) -> bool:
        try:
            self.client.images.get(reference)
        except docker.errors.ImageNotFound:
            return False
        return True


def _mounts_under(root: Path) -> list[str]:
    """Mount points below `root`, deepest first (field 5 of /proc/self/mountinfo)."""
    prefix = str(root)
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mount_point = line.split()[4]
            if mount_point == prefix or mount_point.startswith(prefix + "/"):
                points.append(mount_point)
    return sorted(points, key=len, reverse=True)


def _wait_until_answering(env: dict[str, str], proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dockerd exited with {proc.returncode}:\n{log.read_text()}")
        answer = run(["docker", "version"], env=env, check=False, timeout=30)
        if answer.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"dockerd did not answer within {START_TIMEOUT}s:\n{log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running_dockerd() -> Iterator[DockerEngine]:
    # A short path under /tmp: unix socket paths (ours and containerd's) must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="e2e-dockerd-"))
    socket = root / "docker.sock"
    log_path = root / "dockerd.log"
    # A namespace of our own in case dockerd finds a system containerd and shares it.
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    cmd = [
        "dockerd",
        "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"),
        "--pidfile", str(root / "dockerd.pid"),
        "-H", f"unix://{socket}",
        "--storage-driver", "vfs",
        "--iptables=false", "--ip-masq=false", "--bridge=none",
        "--containerd-namespace", namespace,
        "--containerd-plugins-namespace", f"{namespace}-plugins",
    ]  # fmt: skip
    env = dict(os.environ)
    env.update(
        DOCKER_HOST=f"unix://{socket}",
        # Logins made by tests land here, not in the user's ~/.docker.
        DOCKER_CONFIG=str(root / "client-config"),
        # The classic builder: no buildx plugin needed, and FROM scratch + COPY needs no container.
        DOCKER_BUILDKIT="0",
        DOCKER_CLI_HINTS="false",
    )
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client: docker.DockerClient | None = None
    try:
        _wait_until_answering(env, proc, log_path)
        client = docker.DockerClient(base_url=f"unix://{socket}", version="auto")
        yield DockerEngine(root, socket, env, client, proc, log_path)
    finally:
        if client is not None:
            client.close()
        _stop(proc)
        for mount_point in _mounts_under(root):
            subprocess.run(["umount", "-l", mount_point], check=False)
        shutil.rmtree(root, ignore_errors=True)


def build_scratch_image(
    engine: DockerEngine, tag: str, files: Sequence[tuple[str, bytes]], context_dir: Path
) -> str:
    """Build `FROM scratch` with one `COPY` per file (so one layer per file); return the image ID.

    Two images built from the same leading (name, content) pairs share those layers, which is
    what lets a second push find them already in the registry.
    """
    context_dir.mkdir(parents=True, exist_ok=True)
    lines = ["FROM scratch"]
    for name, content in files:
        (context_dir / name).write_bytes(content)
        lines.append(f"COPY {name} /{name}")
    (context_dir / "Dockerfile").write_text("\n".join(lines) + "\n")
    engine.cli("build", "-t", tag, str(context_dir))
    return engine.image_id(tag)


def layer_ids(engine: DockerEngine, reference: str) -> list[str]:
    """The image's layer diff IDs, in order, as the 12-hex-digit IDs `docker push` prints."""
    layers = engine.client.images.get(reference).attrs["RootFS"]["Layers"]
    return [str(layer).split(":", 1)[1][:12] for layer in layers]
