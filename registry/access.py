"""Who may do what on which repository, as the handlers ask it.

The auth layer puts an `Access` on each request; without one (auth off) everything is allowed.
Handlers call `require()` before touching a repository; a refusal for a repository the caller
cannot read answers as if it did not exist, so existence never leaks.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from registry.errors import ErrorCode, RegistryError

PULL = "pull"
PUSH = "push"
DELETE = "delete"


class Access(Protocol):
    def allows(self, repository: str, action: str) -> bool: ...

    def refusal(self, repository: str, actions: tuple[str, ...]) -> RegistryError:
        """The error for a request that lacks `actions` on `repository` (401 or 403)."""
        ...


class Unrestricted:
    def allows(self, repository: str, action: str) -> bool:
        return True

    def refusal(self, repository: str, actions: tuple[str, ...]) -> RegistryError:
        return RegistryError(ErrorCode.DENIED)


ACCESS_KEY = "beakerd.access"
_UNRESTRICTED = Unrestricted()


def access_of(request: web.Request) -> Access:
    access: Access | None = request.get(ACCESS_KEY)
    return access or _UNRESTRICTED


def require(request: web.Request, repository: str, *actions: str) -> None:
    access = access_of(request)
    if not all(access.allows(repository, action) for action in actions):
        raise access.refusal(repository, actions)
