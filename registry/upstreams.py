"""The pull-through cache's upstream registries, as the config file lists them (`upstreams:`).

Each upstream owns the top-level name it is given: `HOST/<name>/<path>` is `<url>/v2/<path>` in
the cache. Such a name lies outside every account's namespace, so no account's pushes can land
there; the cache's repositories are read-only to clients (registry/proxy.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from registry.names import is_path_component
from storage.orphans import RepositoryOwners

DEFAULT_TAG_TTL_SECONDS = 300.0


class Upstream(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The first path component clients pull it under.")
    url: str = Field(description="`https://HOST[:PORT]` (plain `http://` only on loopback).")
    username: str | None = None
    password: SecretStr | None = None
    tag_ttl_seconds: float = Field(default=DEFAULT_TAG_TTL_SECONDS, ge=0, le=30 * 86400)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not is_path_component(value):
            raise ValueError("must be one lowercase repository name component, e.g. `hub`")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.query or parts.fragment or parts.path not in {"", "/"}:
            raise ValueError("must be the registry's root, without a path, query or fragment")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            # Credentials and unverified content would cross the network in the clear.
            raise ValueError("plain http:// is allowed only for loopback upstreams; use https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> Upstream:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_unique(upstreams: Sequence[Upstream]) -> None:
    """Raises ValueError when two upstreams share a name."""
    seen: set[str] = set()
    for upstream in upstreams:
        if upstream.name in seen:
            raise ValueError(f"two upstreams are named {upstream.name!r}")
        seen.add(upstream.name)


def split_name(upstreams: Sequence[Upstream], repository: str) -> tuple[Upstream, str] | None:
    """The upstream a repository name falls under and its path there; None outside the cache."""
    head, sep, path = repository.partition("/")
    if not sep:
        return None
    for upstream in upstreams:
        if upstream.name == head:
            return upstream, path
    return None


class PullThroughOwners:
    """Repository owners for GC and fsck: an upstream in the config holds the cached
    repositories under its name, as an account holds its namespace (the others ask `inner`)."""

    def __init__(self, inner: RepositoryOwners, upstreams: Sequence[Upstream]) -> None:
        self.inner = inner
        self.names = frozenset(u.name for u in upstreams)

    async def owned(self, names: Sequence[str]) -> set[str]:
        cached = {name for name in names if name.split("/", 1)[0] in self.names}
        return cached | await self.inner.owned([n for n in names if n not in cached])

    async def pinned(self, manifests: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        return await self.inner.pinned(manifests)
