"""The `beaker` CLI against a `--tls auto` server: it trusts the server's CA through `ca_file`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.oci_layout import OciLayout, random_layers
from tests.e2e.test_tls import TlsServer, running_tls_beakerd

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]


def beaker(server: TlsServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEAKER_", "SSL_CERT"))}
    env.update(HOME=str(server.home), PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "beakerd.beaker_cli", *args],
        env=env, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )  # fmt: skip


def _config(server: TlsServer) -> dict[str, str]:
    loaded: dict[str, str] = yaml.safe_load((server.home / ".beaker" / "config.yml").read_text())
    return loaded


def _write_config(server: TlsServer, config: dict[str, str]) -> None:
    (server.home / ".beaker" / "config.yml").write_text(yaml.safe_dump(config))


def test_the_cli_trusts_a_tls_auto_server_through_ca_file_and_says_how_when_it_cannot(
    tmp_path: Path,
) -> None:
    with running_tls_beakerd(tmp_path) as server:
        config = _config(server)
        assert config["agent_address"].startswith("https://")
        # First start named the CA it made: nothing to set by hand.
        assert config["ca_file"] == str(server.ca)
        whoami = beaker(server, "account", "whoami")
        assert whoami.returncode == 0, whoami.stderr

        # Pushing and pulling without a daemon go over TLS to the registry too.
        layout = OciLayout(tmp_path / "layout")
        image = layout.add_image(random_layers(1, 10_000, os.urandom(8)))
        layout.tag(image, "v1")
        created = beaker(server, "image", "create", "--name", "tls", f"oci:{layout.root}:v1")
        assert created.returncode == 0, created.stderr
        pulled = beaker(server, "image", "pull", "tls", "--output", f"oci:{tmp_path / 'out'}")
        assert pulled.returncode == 0, pulled.stderr

        del config["ca_file"]
        _write_config(server, config)
        refused = beaker(server, "account", "whoami")
        assert refused.returncode != 0
        [line] = refused.stderr.splitlines()
        assert "cannot verify the TLS certificate" in line and "ca_file" in line, line
