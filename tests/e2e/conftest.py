"""Fixtures for the end-to-end tests: a private Docker engine and the registry under test.

The registry under test is beakerd (the `beakerd_server` fixture). Setting E2E_REGISTRY=reference
runs the same tests against the CNCF reference registry (`docker-registry serve`) instead, which
tells a broken test apart from a broken server.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.backends.backend import Backend
from tests.e2e.docker_engine import DockerEngine, running_dockerd
from tests.e2e.tools import Registry, require_root, require_tool
from tests.server import free_port


@pytest.fixture(scope="session")
def dockerd() -> Iterator[DockerEngine]:
    """A private dockerd for the session (vfs storage, no networking), stopped by PID at the end."""
    require_tool("dockerd")
    require_tool("docker")
    require_root("dockerd")
    with running_dockerd() as engine:
        yield engine


@dataclass
class ReferenceRegistry:
    """The CNCF reference registry, open (no auth), for comparing behaviour with beakerd."""

    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    username: str = ""
    password: str | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"


@contextlib.contextmanager
def running_reference_registry(
    tmp: Path, access_log: bool = False, port: int | None = None
) -> Iterator[ReferenceRegistry]:
    """`access_log`: one line per request in `log_path` (tests count upstream fetches there);
    `port`: to start it again where a stopped one was."""
    port = port or free_port()
    log: dict[str, object] = (
        {"level": "info", "accesslog": {"disabled": False}} if access_log else {"level": "warn"}
    )
    config = {
        "version": 0.1,
        "log": log,
        "storage": {
            "filesystem": {"rootdirectory": str(tmp / "data")},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    config_path = tmp / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = tmp / "registry.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            ["docker-registry", "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT
        )
    registry = ReferenceRegistry(port, proc, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start:\n{log_path.read_text()}")
            try:
                urllib.request.urlopen(registry.url + "/v2/", timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.05)
        yield registry
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def reference_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceRegistry]:
    require_tool("docker-registry")
    with running_reference_registry(tmp_path_factory.mktemp("reference-registry")) as registry:
        yield registry


@pytest.fixture(scope="session")
def registry(request: pytest.FixtureRequest, session_backend: Backend) -> Registry:
    """The registry under test: beakerd (on each backend) unless E2E_REGISTRY=reference.

    `session_backend` is named here so that the tests are parametrized by it: pytest cannot
    look up a parametrized fixture (beakerd_server) by name otherwise."""
    if os.environ.get("E2E_REGISTRY") == "reference":
        reference: Registry = request.getfixturevalue("reference_registry")
        return reference
    server: Registry = request.getfixturevalue("beakerd_server")
    return server
