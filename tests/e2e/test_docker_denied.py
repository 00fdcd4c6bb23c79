"""A push or pull the account may not make fails at once, with docker's standard message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.docker_engine import DockerEngine, build_scratch_image
from tests.e2e.tools import run
from tests.server import Server

pytestmark = pytest.mark.e2e

# docker's own words for a refused push (the registry's message follows them).
DOCKER_DENIED = "denied: requested access to the resource is denied"


def _add_account(server: Server, name: str) -> str:
    added = subprocess.run(
        [sys.executable, "-m", "beakerd", *server.store_args, "account", "add", name],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    return added.stdout.split("API token: ")[1].split()[0]


def _docker_as(
    engine: DockerEngine, config: Path, *args: str, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The docker CLI with a login store of its own, so other tests keep theirs."""
    env = {**engine.env, "DOCKER_CONFIG": str(config)}
    return run(["docker", *args], env=env, input_text=input_text, check=False)


def test_pushing_into_another_accounts_namespace_fails_at_once_with_dockers_message(
    dockerd: DockerEngine, beakerd_server: Server, tmp_path: Path
) -> None:
    secret = _add_account(beakerd_server, "intruder")
    config = tmp_path / "docker-config"
    login = _docker_as(
        dockerd, config, "login", "-u", "intruder", "--password-stdin",
        beakerd_server.address, input_text=secret,
    )  # fmt: skip
    assert login.returncode == 0, login.stdout
    reference = f"{beakerd_server.address}/{beakerd_server.username}/victim:v1"
    build_scratch_image(dockerd, reference, [("v.bin", os.urandom(4_000))], tmp_path / "ctx")

    pushed = _docker_as(dockerd, config, "push", reference)

    assert pushed.returncode != 0
    assert DOCKER_DENIED in pushed.stdout, pushed.stdout
    # docker retries a 403 with "Retrying in N seconds" for about a minute; Docker's token spec
    # answer (401 insufficient_scope) ends the push at the first refusal.
    assert "Retrying in" not in pushed.stdout, pushed.stdout

    pulled = _docker_as(dockerd, config, "pull", f"{beakerd_server.address}/nobody/absent:v1")
    assert pulled.returncode != 0
    assert "Retrying in" not in pulled.stdout
