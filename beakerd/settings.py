"""Server settings: flags over `BEAKERD_*` environment variables over defaults."""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from beakerd.policy_config import PolicyConfig, WebhookConfig
from storage.blobstore.location import FileLocation, S3Location, parse_location
from storage.postgres import is_postgres_url
from storage.sizes import parse_size
from storage.sqlite import sqlite_path

# The values of `--config FILE` while `load_settings` builds Settings.
_CONFIG_FILE_VALUES: ContextVar[dict[str, Any] | None] = ContextVar(
    "beakerd_config_file", default=None
)


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "beakerd"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BEAKERD_", extra="forbid")

    host: str = Field(default="127.0.0.1", description="Address to listen on (`--host`).")
    port: int = Field(default=5000, ge=0, le=65535, description="HTTP port (`--port`).")
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Blobs, database, keys and certificates (`--data-dir`).",
    )
    database: str | None = Field(
        default=None,
        description="`sqlite:///PATH` or `postgresql://USER:PASS@HOST:PORT/DB`, which replicas"
        " share (`--database`); unset: `beakerd.db` in the data folder.",
    )
    database_connect_timeout_seconds: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="How long start-up waits for a PostgreSQL server that is not answering yet.",
    )
    blob_store: str | None = Field(
        default=None,
        description="Where blobs live (`--blob-store`): `file:///PATH` (a folder) or"
        " `s3://BUCKET[/PREFIX]` (credentials and region from AWS_ACCESS_KEY_ID,"
        " AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION); unset: the data folder.",
    )
    s3_endpoint: str | None = Field(
        default=None,
        description="URL of an S3-compatible server (SeaweedFS, MinIO, Ceph) for an s3://"
        " blob store; unset: AWS. Pulls redirected to it must reach it from clients too.",
    )
    blob_redirect: bool = Field(
        default=True,
        description="With an S3 blob store, answer pulls with a 307 redirect to a presigned"
        " URL (off: stream them through beakerd).",
    )
    log_level: str = Field(default="info", description="debug, info, warning or error.")
    public_address: str | None = Field(
        default=None,
        description="The host:port clients use (image tags, token realms; `--public-address`);"
        " unset: the address a connection arrived on.",
    )
    anonymous_pull: bool = Field(
        default=False, description="Let requests without credentials pull every repository."
    )
    bootstrap_account: str | None = Field(
        default=None,
        description="The admin account first start creates; unset: named after the OS user.",
    )
    token_ttl_seconds: int = Field(
        default=3600,
        ge=60,
        le=7 * 86400,
        description="Lifetime of registry tokens and of an image's push credentials (never"
        " longer than the API token behind them).",
    )
    web_session_ttl_seconds: int = Field(
        default=7 * 86400,
        ge=60,
        le=90 * 86400,
        description="How long a sign-in to the web pages lasts (never longer than the API"
        " token signed in with; signing out or revoking the token ends it at once).",
    )
    gc_interval_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How often the server collects garbage in the background (0: never;"
        " `beakerd gc` still works).",
    )
    gc_grace_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How long anything created or linked stays safe from collection.",
    )
    upload_expiry_seconds: float = Field(
        default=86400.0, ge=0, description="When an idle upload session expires."
    )
    gc_untagged_manifests: bool = Field(
        default=False,
        description="Collect manifests no tag, index, subject or Beaker image holds.",
    )
    scrub_interval_seconds: float = Field(
        default=86400.0,
        ge=0,
        description="How often every stored blob is re-hashed; a corrupt one is moved out and"
        " answers as unknown until pushed again (0: never).",
    )
    scrub_rate_bytes_per_second: int = Field(
        default=50 << 20, ge=0, description="The most the scrub reads per second (0: no scrub)."
    )
    tls_cert: Path | None = Field(
        default=None, description="Serve HTTPS (and gRPC) with this certificate chain (PEM)."
    )
    tls_key: Path | None = Field(default=None, description="The private key of `tls_cert`.")
    tls_auto: bool = Field(
        default=False,
        description="Make and keep a CA and a server certificate under `<data_dir>/tls/` and"
        " serve HTTPS (`--tls auto`).",
    )
    body_read_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="A request body that sends nothing for this long is abandoned; an upload"
        " stays at its last acknowledged offset.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="`text` lines for people, `json` objects for collectors."
    )
    access_log: bool = Field(
        default=True, description="One line per request on the `beakerd.access` logger."
    )
    workers: int = Field(
        default=1, ge=1, le=64, description="Processes serving the one port (SO_REUSEPORT)."
    )
    shutdown_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="On SIGTERM, how long requests in flight may take to finish.",
    )
    header_read_timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        le=3600,
        description="A request's line and headers must arrive whole within this long (for a"
        " connection's first request, from its opening, TLS handshake included).",
    )
    keepalive_timeout_seconds: float = Field(
        default=75.0,
        gt=0,
        le=86400,
        description="An idle keep-alive connection is closed after this long.",
    )
    max_connections: int = Field(
        default=4096,
        ge=1,
        le=1_000_000,
        description="Connections one process holds at once, lowered to fit its file-descriptor"
        " limit; past it the longest-idle one is dropped, or a new one waits in the backlog.",
    )
    grpc_enabled: bool = Field(
        default=True,
        description="Serve the gRPC API of beaker-py 2.x (always TLS: `tls_cert`, else the"
        " `--tls auto` CA, made on first start).",
    )
    grpc_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="The gRPC port; unset: the HTTP port + 1 (turned off with a warning if"
        " taken); 0: any free port.",
    )

    quota_bytes: int | None = Field(
        default=None,
        ge=0,
        description="The storage quota of an account without one of its own (`beakerd account"
        " quota`), in bytes or as `500M`, `10G`; each blob counts once per account. Unset:"
        " unlimited.",
    )
    policies: list[PolicyConfig] = Field(
        default_factory=list,
        description="Repository policies (immutable tags, retention), each with `repositories`"
        " (a pattern), `immutable_tags`, `tags`, `keep_newest`, `tags_older_than` and"
        " `untagged_older_than`; `beakerd policy set` adds more. See beakerd/policy_config.py.",
    )
    retention_interval_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How often the server applies the retention policies (0: never;"
        " `beakerd retention` still works).",
    )
    webhooks: list[WebhookConfig] = Field(
        default_factory=list,
        description="Webhook endpoints, each with `url`, `secret` (HMAC-SHA256 key of the"
        " `X-Beakerd-Signature-256` header) and `events` (push, delete, pull, image_commit,"
        " quota_exceeded; default all).",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="How long one webhook delivery may take."
    )
    webhook_max_attempts: int = Field(
        default=12,
        ge=1,
        le=100,
        description="Deliveries of an event before it is dropped (retries back off from 1 s"
        " doubling to 1 hour); dropped events are counted in `/metrics`.",
    )
    webhook_outbox_max_events: int = Field(
        default=10000,
        ge=1,
        description="Undelivered webhook events kept; past it the oldest are dropped (and"
        " counted in `/metrics`).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags (init kwargs) over BEAKERD_* variables over the config file over defaults.
        file_values = InitSettingsSource(settings_cls, dict(_CONFIG_FILE_VALUES.get() or {}))
        return (init_settings, env_settings, file_values)

    @field_validator("database")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is not None and not is_postgres_url(value):
            sqlite_path(value)  # raises ValueError, naming the URL
        return value

    @field_validator("quota_bytes", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        return parse_size(value) if isinstance(value, str) else value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be one of debug, info, warning, error")
        return level

    @field_validator("blob_store")
    @classmethod
    def _known_store(cls, value: str | None) -> str | None:
        if value is not None:
            parse_location(value)  # BadLocation is a ValueError: reported with the setting
        return value

    @field_validator("s3_endpoint")
    @classmethod
    def _http_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @property
    def blob_location(self) -> FileLocation | S3Location:
        if self.blob_store is None:
            return FileLocation(self.data_dir)
        return parse_location(self.blob_store)

    @property
    def tls_enabled(self) -> bool:
        return self.tls_auto or self.tls_cert is not None

    @property
    def url_scheme(self) -> str:
        """`https` when serving TLS: token realms and the Beaker `agent_address` use it."""
        return "https" if self.tls_enabled else "http"

    @property
    def listen_address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def loopback_only(self) -> bool:
        """Whether only this machine can reach the server."""
        return self.host in {"127.0.0.1", "localhost", "::1"} or self.host.startswith("127.")

    @property
    def registry_address(self) -> str:
        """host:port as clients address the registry, e.g. in `docker push HOST:PORT/repo`."""
        return self.public_address or self.listen_address

    @property
    def rpc_port(self) -> int:
        """The gRPC port: `grpc_port`, else the HTTP port + 1 (0, a free one, for HTTP port 0)."""
        if self.grpc_port is not None:
            return self.grpc_port
        return self.port + 1 if 0 < self.port < 65535 else 0

    @property
    def rpc_address(self) -> str | None:
        """host:port for beaker-py's `rpc_address` (the registry's host); None if not yet known."""
        if not self.grpc_enabled or self.rpc_port == 0:
            return None
        host, sep, _ = self.registry_address.rpartition(":")
        return f"{host if sep else self.registry_address}:{self.rpc_port}"


# -- loading: flags > BEAKERD_* > config file > defaults, one clear line per mistake -------------

ENV_PREFIX = "BEAKERD_"
# Where to find the config file when no --config flag is given.
CONFIG_ENV = ENV_PREFIX + "CONFIG"


class ConfigError(Exception):
    """A setting or config file that cannot be used; the message is one line for the user."""


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in a YAML or TOML file (TOML when it ends in .toml), keys as field names."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError(f"config file {path} cannot be read: {reason}") from None
    data: Any
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            where = getattr(e, "problem_mark", None)
            at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
            problem = getattr(e, "problem", None) or "syntax error"
            raise ConfigError(f"config file {path} is not valid YAML{at}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of setting: value")
    # `data-dir` and `data_dir` both name the field data_dir, as the flag and the variable do.
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def load_settings(flags: dict[str, Any], config_file: Path | None = None) -> Settings:
    """Settings from flags (only those given), BEAKERD_* variables, the config file, defaults.

    `config_file` defaults to $BEAKERD_CONFIG when set. Raises ConfigError naming the setting
    and where its bad value came from.
    """
    if config_file is None and os.environ.get(CONFIG_ENV):
        config_file = Path(os.environ[CONFIG_ENV])
    file_values = read_config_file(config_file) if config_file is not None else {}
    token = _CONFIG_FILE_VALUES.set(file_values)
    try:
        return Settings(**flags)
    except ValidationError as e:
        error = e.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "settings"
        key = field.split(".")[0]
        if error["type"] == "extra_forbidden":
            raise ConfigError(
                f"config file {config_file}: unknown setting {key!r}"
                if key in file_values
                else f"unknown setting {key!r}"
            ) from None
        if key in flags:
            source = f"--{key.replace('_', '-')}"
        elif (ENV_PREFIX + key).upper() in {name.upper() for name in os.environ}:
            source = (ENV_PREFIX + key).upper()
        elif key in file_values:
            source = f"config file {config_file}"
        else:
            source = "default"
        raise ConfigError(f"invalid {field} (from {source}): {error['msg']}") from None
    finally:
        _CONFIG_FILE_VALUES.reset(token)
