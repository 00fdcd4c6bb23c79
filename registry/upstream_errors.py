"""What the pull-through cache asks of an upstream's auth, and answers its clients when an
upstream fails them."""

from __future__ import annotations

import logging

from registry.errors import ErrorCode, RegistryError
from registry.upstream_client import (
    UpstreamClient,
    UpstreamDenied,
    UpstreamError,
    UpstreamUnavailable,
)

log = logging.getLogger("beakerd.proxy")


def pull_scope(path: str) -> str:
    """The token scope the cache asks an upstream for, to pull `path`."""
    return f"repository:{path}:pull"


def unavailable(code: ErrorCode, client: UpstreamClient, error: BaseException) -> RegistryError:
    return RegistryError(
        code, f"upstream {client.name} is unavailable and nothing is cached: {error}", status=503
    )


def bad_upstream(
    client: UpstreamClient, message: str, code: ErrorCode = ErrorCode.MANIFEST_INVALID
) -> RegistryError:
    log.warning("upstream %s: %s", client.name, message)
    return RegistryError(code, f"upstream {client.name}: {message}", status=502)


def upstream_failure(
    code: ErrorCode, client: UpstreamClient, error: UpstreamError
) -> RegistryError:
    if isinstance(error, UpstreamUnavailable):
        return unavailable(code, client, error)
    if isinstance(error, UpstreamDenied):
        return RegistryError(
            ErrorCode.DENIED, f"upstream {client.name} refused the cache's credentials", status=502
        )
    return RegistryError(code, f"upstream {client.name}: {error}", status=502)
