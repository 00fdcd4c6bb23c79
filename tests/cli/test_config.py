"""Where the CLI finds its server and token: the config file, BEAKER_CONFIG, BEAKER_ADDR/TOKEN."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from beakerd.beaker_cli import config
from beakerd.beaker_cli.errors import CliError


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_reads_the_users_config_file_under_home(home: Path) -> None:
    write(
        home / ".beaker" / "config.yml", {"agent_address": "http://127.0.0.1:7", "user_token": "t"}
    )
    loaded = config.load({})
    assert loaded.agent_address == "http://127.0.0.1:7"
    assert loaded.token == "t"


def test_beaker_config_names_another_file(home: Path, tmp_path: Path) -> None:
    write(home / ".beaker" / "config.yml", {"user_token": "from-home"})
    other = write(tmp_path / "other.yml", {"user_token": "from-other"})
    assert config.load({"BEAKER_CONFIG": str(other)}).user_token == "from-other"


def test_environment_overrides_the_file(home: Path) -> None:
    write(home / ".beaker" / "config.yml", {"agent_address": "http://file:1", "user_token": "f"})
    loaded = config.load({"BEAKER_ADDR": "http://env:2", "BEAKER_TOKEN": "e"})
    assert (loaded.agent_address, loaded.user_token) == ("http://env:2", "e")


def test_empty_strings_mean_unset(home: Path) -> None:
    write(home / ".beaker" / "config.yml", {"default_workspace": "", "default_org": ""})
    loaded = config.load({"BEAKER_ADDR": ""})
    assert loaded.default_workspace is None
    assert loaded.default_org is None
    assert loaded.agent_address is None


def test_missing_file_is_an_empty_config(home: Path) -> None:
    assert config.load({}) == config.Config()


@pytest.mark.parametrize(
    ("address", "base"),
    [
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000/api/v3"),
        ("http://127.0.0.1:5000/", "http://127.0.0.1:5000/api/v3"),
        ("127.0.0.1:5000", "http://127.0.0.1:5000/api/v3"),
        ("https://beaker.example", "https://beaker.example/api/v3"),
    ],
)
def test_api_base_is_the_address_plus_api_v3(address: str, base: str) -> None:
    assert config.api_base(address) == base


def test_missing_address_and_token_are_clear_errors(home: Path) -> None:
    loaded = config.load({})
    with pytest.raises(CliError, match="BEAKER_ADDR"):
        _ = loaded.api_base
    with pytest.raises(CliError, match="BEAKER_TOKEN"):
        _ = loaded.token


def test_invalid_yaml_is_a_clear_error(home: Path) -> None:
    path = home / ".beaker" / "config.yml"
    path.parent.mkdir()
    path.write_text("agent_address: [unclosed\n")
    with pytest.raises(CliError, match="not valid YAML"):
        config.load({})


def test_set_value_keeps_other_keys_and_is_private(home: Path) -> None:
    path = write(home / ".beaker" / "config.yml", {"user_token": "t", "unknown_extra": 1})
    config.set_value(path, "default_workspace", "alice/default")
    data = yaml.safe_load(path.read_text())
    assert data == {"user_token": "t", "unknown_extra": 1, "default_workspace": "alice/default"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_set_value_creates_the_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "config.yml"
    config.set_value(path, "agent_address", "http://127.0.0.1:9")
    assert config.from_file(path).agent_address == "http://127.0.0.1:9"


def test_set_value_refuses_unknown_keys(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="unknown config key"):
        config.set_value(tmp_path / "c.yml", "agent_adress", "x")


def test_redact_hides_most_of_a_token() -> None:
    shown = config.redact("bk_abcdefghijklmnopqrstuvwxyz")
    assert shown.startswith("bk_a") and shown.endswith("wxyz")
    assert "klmn" not in shown
