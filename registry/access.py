"""Who may do what on which repository, as the handlers ask it.

The auth middleware puts an `Access` on each request; without one (auth off, as in the
registry's own unit tests) everything is allowed. Handlers call `require()` before touching a
repository. Decisions depend on names and accounts only, never on whether a repository exists,
so a refusal tells nothing about existence.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from registry.context import REGISTRY
from registry.errors import ErrorCode, RegistryError
from registry.proxy import refuse_write

PULL = "pull"
PUSH = "push"
DELETE = "delete"


class Access(Protocol):
    async def allows(self, repository: str, action: str) -> bool:
        """Whether this request's credentials grant `action` on `repository`."""
        ...

    async def may_read(self, repository: str) -> bool:
        """Whether the caller's account may pull `repository`, token scope aside."""
        ...

    async def readable(self, repositories: list[str]) -> list[str]:
        """Those of `repositories` the caller's account may pull, in order (catalog pages)."""
        ...

    async def allows_catalog(self) -> bool:
        """Whether this request's credentials may list the catalog (`registry:catalog:*`)."""
        ...

    async def may_create(self, repository: str) -> bool:
        """Whether a push may bring `repository` into existence.

        Only in an account's namespace: an image's repository exists from the image's creation
        and is never re-created by a push, so no repository lives outside every namespace and
        image.
        """
        ...

    async def refusal(self, repository: str | None, actions: tuple[str, ...]) -> RegistryError:
        """The error for a request lacking `actions` on `repository` (None: the catalog)."""
        ...


class Unrestricted:
    async def allows(self, repository: str, action: str) -> bool:
        return True

    async def may_read(self, repository: str) -> bool:
        return True

    async def readable(self, repositories: list[str]) -> list[str]:
        return repositories

    async def allows_catalog(self) -> bool:
        return True

    async def may_create(self, repository: str) -> bool:
        return True

    async def refusal(self, repository: str | None, actions: tuple[str, ...]) -> RegistryError:
        return RegistryError(ErrorCode.DENIED)


ACCESS_KEY = web.RequestKey("beakerd.access", Access)
# The caller's account name, recorded by whichever API authenticated it (for the access log).
ACCOUNT_NAME = web.RequestKey("beakerd.account", str)
_UNRESTRICTED = Unrestricted()


def access_of(request: web.Request) -> Access:
    access: Access | None = request.get(ACCESS_KEY)
    return access or _UNRESTRICTED


async def require(request: web.Request, repository: str, *actions: str) -> None:
    if PUSH in actions or DELETE in actions:
        # Before any credential check: the answer is the same for everyone, and says nothing
        # about what the cache holds.
        ctx = request.app.get(REGISTRY)
        if ctx is not None:
            refuse_write(ctx.proxy, repository)
    access = access_of(request)
    for action in actions:
        if not await access.allows(repository, action):
            raise await access.refusal(repository, actions)


async def require_catalog(request: web.Request) -> Access:
    access = access_of(request)
    if not await access.allows_catalog():
        raise await access.refusal(None, ("*",))
    return access
