"""Server settings: flags over `BEAKERD_*` environment variables over defaults."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "beakerd"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BEAKERD_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    log_level: str = "info"
    # The host:port clients should use for this registry (in image tags and token realms);
    # defaults to the address the server listens on.
    public_address: str | None = None
    # Let requests without credentials pull every repository.
    anonymous_pull: bool = False
    # The account created on first start (default: the OS user); it is an admin.
    bootstrap_account: str | None = None
    # Lifetime of registry bearer tokens and of the push credentials minted for an image.
    token_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 86400)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be one of debug, info, warning, error")
        return level

    @property
    def listen_address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def registry_address(self) -> str:
        """host:port as clients address the registry, e.g. in `docker push HOST:PORT/repo`."""
        return self.public_address or self.listen_address
