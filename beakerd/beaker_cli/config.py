"""The Beaker client configuration: `$BEAKER_CONFIG` or `~/.beaker/config.yml`, then env overrides.

The file is the one beaker-py reads, and the one beakerd writes on first start, so the CLI and
beaker-py share one login. Empty strings mean "unset", as in beaker-py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from beakerd.beaker_cli.errors import CliError

# The keys beaker-py knows; the CLI refuses others so that a typo does not pass silently.
CONFIG_KEYS = (
    "agent_address",
    "user_token",
    "default_org",
    "default_workspace",
    "default_image",
    "ca_file",
)
SENSITIVE_KEYS = frozenset({"user_token"})
# Environment variables that override the file, as in beaker-py.
ENV_OVERRIDES = {"agent_address": "BEAKER_ADDR", "user_token": "BEAKER_TOKEN"}


@dataclass(frozen=True)
class Config:
    agent_address: str | None = None
    user_token: str | None = None
    default_org: str | None = None
    default_workspace: str | None = None
    default_image: str | None = None
    # A CA certificate to trust beside the system's (a `beakerd --tls auto` server's own CA).
    ca_file: str | None = None

    def get(self, key: str) -> str | None:
        value: str | None = getattr(self, key)
        return value

    @property
    def api_base(self) -> str:
        """`{agent_address}/api/v3`; a bare `host:port` address means plain HTTP."""
        if not self.agent_address:
            raise CliError(
                "no Beaker address configured: set BEAKER_ADDR or run "
                "'beaker config set agent_address http://HOST:PORT'"
            )
        return api_base(self.agent_address)

    @property
    def token(self) -> str:
        if not self.user_token:
            raise CliError(
                "no Beaker token configured: set BEAKER_TOKEN or run "
                "'beaker config set user_token TOKEN'"
            )
        return self.user_token


def api_base(address: str) -> str:
    address = address.strip().rstrip("/")
    if "://" not in address:
        address = "http://" + address
    return address + "/api/v3"


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    explicit = env.get("BEAKER_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    return Path.home() / ".beaker" / "config.yml"


def _normalise(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text != "" else None


def read_file(path: Path) -> dict[str, Any]:
    """The raw YAML mapping in `path` ({} when the file does not exist)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise CliError(f"cannot read config file {path}: {e.strerror or e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CliError(f"config file {path} is not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CliError(f"config file {path} must hold a mapping of keys to values")
    return data


def from_file(path: Path) -> Config:
    data = read_file(path)
    known = {f.name for f in fields(Config)}
    return Config(**{k: _normalise(v) for k, v in data.items() if k in known})


def load(environ: Mapping[str, str] | None = None) -> Config:
    """The effective configuration: the file, then `BEAKER_ADDR` / `BEAKER_TOKEN` over it."""
    env = os.environ if environ is None else environ
    config = from_file(config_path(env))
    overrides = {key: env[var] for key, var in ENV_OVERRIDES.items() if env.get(var)}
    return replace(config, **overrides) if overrides else config


def set_value(path: Path, key: str, value: str) -> None:
    """Write one key into the file, keeping the others (and any keys this CLI does not know)."""
    if key not in CONFIG_KEYS:
        raise CliError(f"unknown config key {key!r}; known keys: {', '.join(CONFIG_KEYS)}")
    data = read_file(path)
    data[key] = value
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The file holds a secret (the token): readable by its owner only.
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(data, f, default_flow_style=False, sort_keys=False)
        os.replace(tmp, path)
    except OSError as e:
        raise CliError(f"cannot write config file {path}: {e.strerror or e}") from e


def redact(value: str) -> str:
    """A token shown by `config list`: enough to tell tokens apart, not enough to use one."""
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "…" + value[-4:]
