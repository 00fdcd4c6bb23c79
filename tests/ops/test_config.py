"""Settings come from flags over BEAKERD_* over a YAML/TOML config file over defaults; mistakes
are one clear line and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from beakerd.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def no_beakerd_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BEAKERD_"):
            monkeypatch.delenv(name)


def test_precedence_is_flags_then_environment_then_file_then_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "beakerd.yaml"
    config.write_text("port: 6001\nworkers: 3\nlog-format: json\nanonymous_pull: true\n")
    monkeypatch.setenv("BEAKERD_PORT", "6002")
    monkeypatch.setenv("BEAKERD_WORKERS", "2")
    settings = load_settings({"port": 6003}, config)
    assert settings.port == 6003  # flag beats environment and file
    assert settings.workers == 2  # environment beats file
    assert settings.log_format == "json"  # file beats default (and `log-format` means log_format)
    assert settings.anonymous_pull is True
    assert settings.host == "127.0.0.1"  # default


def test_toml_config_file(tmp_path: Path) -> None:
    config = tmp_path / "beakerd.toml"
    config.write_text('host = "0.0.0.0"\nshutdown_grace_seconds = 2.5\n')
    settings = load_settings({}, config)
    assert settings.host == "0.0.0.0"
    assert settings.shutdown_grace_seconds == 2.5


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.yml"
    config.write_text("port: 6100\n")
    monkeypatch.setenv("BEAKERD_CONFIG", str(config))
    assert load_settings({}).port == 6100


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.yaml", None, "does not exist"),
        ("bad.yaml", "port: [1, 2\n", "is not valid YAML (line"),
        ("bad.toml", "port = \n", "is not valid TOML"),
        ("unknown.yaml", "colour: blue\n", "unknown setting 'colour'"),
        ("type.yaml", "port: eighty\n", "invalid port (from config file"),
        ("range.toml", "workers = 0\n", "invalid workers (from config file"),
        ("list.yaml", "- port\n", "must hold a mapping"),
    ],
)
def test_bad_config_file_is_one_line_and_exit_status_2(
    tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    config = tmp_path / name
    if content is not None:
        config.write_text(content)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_settings({}, config)
    result = subprocess.run(
        [sys.executable, "-m", "beakerd", "serve", "--config", str(config),
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60, env=_env(tmp_path),
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("beakerd: ") and message in lines[0]


def test_unreadable_config_file_is_one_line(tmp_path: Path) -> None:
    # A folder cannot be read as a file, whoever runs the test (root reads any file).
    folder = tmp_path / "config.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings({}, folder)


def test_bad_environment_value_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEAKERD_SHUTDOWN_GRACE_SECONDS", "-1")
    with pytest.raises(
        ConfigError, match=r"invalid shutdown_grace_seconds \(from BEAKERD_SHUTDOWN"
    ):
        load_settings({})


def test_bad_flag_value_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "beakerd", "--log-format", "xml", "serve",
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60, env=_env(tmp_path),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "beakerd: invalid log_format (from --log-format): Input should be 'text' or 'json'"
    )


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEAKERD_")}
    env["HOME"] = str(tmp_path / "home")  # never touch the real user's Beaker config
    return env
