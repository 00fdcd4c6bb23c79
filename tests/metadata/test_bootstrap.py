"""First start: admin account, org, workspace, and the user's Beaker config (never overwritten)."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from tests.metadata.conftest import make_app
from tests.metadata.helpers import Api


async def test_first_start_writes_a_private_beaker_config_that_logs_in(
    tmp_path: Path, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "beakerd.metadata")
    async with TestClient(TestServer(make_app(tmp_path))) as client:
        path = home / ".beaker" / "config.yml"
        config = yaml.safe_load(path.read_text())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert config["agent_address"] == "http://127.0.0.1:5000"
        assert config["default_org"] == "tester"
        assert config["default_workspace"] == "tester/default"
        api = Api(client, config["user_token"])
        me = await api.ok("GET", "/user")
        assert me["name"] == "tester"
        org = await api.ok("GET", "/orgs/tester")
        assert org["name"] == "tester"
        workspace = await api.ok("GET", "/workspaces/tester%2Fdefault")
        assert workspace["fullName"] == "tester/default"
    assert any("wrote Beaker client config" in r.getMessage() for r in caplog.records)


async def test_an_existing_beaker_config_is_left_untouched(
    tmp_path: Path, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "beakerd.metadata")
    path = home / ".beaker" / "config.yml"
    path.parent.mkdir()
    path.write_text("agent_address: https://beaker.org\nuser_token: mine\n")
    async with TestClient(TestServer(make_app(tmp_path))):
        pass
    assert path.read_text() == "agent_address: https://beaker.org\nuser_token: mine\n"
    assert any("left the existing Beaker client config" in r.getMessage() for r in caplog.records)


async def test_bootstrap_account_defaults_to_the_os_user(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "Ada Lovelace")
    async with TestClient(TestServer(make_app(tmp_path, bootstrap_account=None))) as client:
        config = yaml.safe_load((home / ".beaker" / "config.yml").read_text())
        me = await Api(client, config["user_token"]).ok("GET", "/user")
    assert me["name"] == "ada-lovelace"
    assert config["default_workspace"] == "ada-lovelace/default"


async def test_a_restart_keeps_the_accounts_and_does_not_bootstrap_again(
    tmp_path: Path, home: Path
) -> None:
    async with TestClient(TestServer(make_app(tmp_path))):
        pass
    first = (home / ".beaker" / "config.yml").read_text()
    (home / ".beaker" / "config.yml").unlink()
    async with TestClient(TestServer(make_app(tmp_path))) as client:
        token = yaml.safe_load(first)["user_token"]
        assert (await Api(client, token).ok("GET", "/user"))["name"] == "tester"
    # No second admin, so no new config with a new token.
    assert not (home / ".beaker" / "config.yml").exists()
