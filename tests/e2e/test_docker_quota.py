"""docker pushing past an account's quota: the push fails with the quota's message, and the
account holds what it held before (storage/refused_pushes.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.docker_engine import DockerEngine, build_scratch_image
from tests.e2e.test_docker_denied import _add_account, _docker_as
from tests.server import Server

pytestmark = pytest.mark.e2e

LAYER = 3 << 20


def _used_bytes(server: Server, secret: str) -> int:
    request = urllib.request.Request(
        f"{server.url}/api/v3/user/storage", headers={"Authorization": f"Bearer {secret}"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return int(json.load(resp)["usedBytes"])


def test_docker_pushing_three_layers_past_the_quota_gets_its_message_and_keeps_nothing(
    dockerd: DockerEngine, beakerd_server: Server, tmp_path: Path
) -> None:
    account = f"quota{os.getpid()}"
    secret = _add_account(beakerd_server, account)
    quota = subprocess.run(
        [sys.executable, "-m", "beakerd", *beakerd_server.store_args,
         "account", "quota", account, str(5 * LAYER // 3)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert quota.returncode == 0, quota.stderr
    config = tmp_path / "docker-config"
    login = _docker_as(
        dockerd, config, "login", "-u", account, "--password-stdin",
        beakerd_server.address, input_text=secret,
    )  # fmt: skip
    assert login.returncode == 0, login.stdout
    small = f"{beakerd_server.address}/{account}/small:v1"
    build_scratch_image(dockerd, small, [("s.bin", os.urandom(100_000))], tmp_path / "small")
    assert _docker_as(dockerd, config, "push", small).returncode == 0
    before = _used_bytes(beakerd_server, secret)
    assert before > 0

    big = f"{beakerd_server.address}/{account}/big:v1"
    files = [(f"{n}.bin", os.urandom(LAYER)) for n in range(3)]
    build_scratch_image(dockerd, big, files, tmp_path / "big")
    pushed = _docker_as(dockerd, config, "push", big)

    assert pushed.returncode != 0
    assert "denied: quota exceeded: " in pushed.stdout, pushed.stdout
    assert f" used of {5 * LAYER // 3 / (1 << 20):.1f} MiB" in pushed.stdout, pushed.stdout
    assert _used_bytes(beakerd_server, secret) == before
