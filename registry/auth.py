"""Docker's token flow on /v2: challenges, the token endpoint, and each request's Access.

Accounts live in the Beaker metadata store; the registry asks them through `Authority`, so
this module knows names and actions, never tables. A request may carry:
- a bearer JWT from `/v2/token` (what docker, skopeo, podman and oras send),
- HTTP Basic with an account's API token or a minted image credential (curl, scripts),
- nothing: anonymous, which may pull only when the server allows anonymous pulls.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler

from registry.access import ACCESS_KEY, ACCOUNT_NAME, PULL
from registry.context import REGISTRY
from registry.errors import ErrorCode, RegistryError, error_response
from registry.names import MAX_NAME_LENGTH, check_name
from registry.tokens import TOKENS, Claims, Grant, InvalidToken, TokenIssuer, granted

CATALOG_SCOPE = "registry:catalog:*"
TOKEN_PATH = "/v2/token"
_MAX_SCOPES = 32


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    admin: bool = False
    # Set for a minted, repository-scoped credential: it may do exactly what these say.
    grants: tuple[Grant, ...] | None = None
    token_id: str | None = None
    # When the credential itself expires (an API token with an expiry, a minted credential):
    # no registry token issued from it may outlive it.
    expires: float | None = None
    # The Beaker image a minted credential was made for: deleting the image stops it.
    image_id: str | None = None


class Authority(Protocol):
    async def authenticate(self, username: str, secret: str) -> Principal | None: ...

    async def allowed_actions(
        self, principal: Principal | None, repository: str
    ) -> frozenset[str]: ...

    async def readable_repositories(
        self, principal: Principal | None, repositories: list[str]
    ) -> frozenset[str]:
        """Which of `repositories` the principal may pull (a catalog page at a time)."""
        ...

    async def token_is_live(self, token_id: str) -> bool:
        """False once the API token a registry token came from is revoked or expired."""
        ...

    async def image_is_live(self, image_id: str) -> bool:
        """False once the image a minted credential was made for is deleted."""
        ...

    async def namespace_exists(self, repository: str) -> bool:
        """Whether an account owns the namespace `repository` lies in (its first component)."""
        ...


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    service: str
    anonymous_pull: bool
    token_ttl: float
    # `scheme://host:port` clients reach the server at (from --public-address), for the realm
    # of challenges; None: the address the connection arrived on.
    public_base: str | None = None
    # The upstreams' names: repositories under them are the pull-through cache, which any
    # account may pull (anonymous callers too when anonymous pulls are on) and none may write.
    pull_through: frozenset[str] = frozenset()

    def in_pull_through(self, repository: str) -> bool:
        return repository.split("/", 1)[0] in self.pull_through


AUTHORITY = web.AppKey("authority", Authority)
AUTH_POLICY = web.AppKey("auth_policy", AuthPolicy)


class _Caller:
    """What the caller's account may do, whatever the scope of the token in hand."""

    def __init__(self, authority: Authority, policy: AuthPolicy, principal: Principal | None):
        self.authority = authority
        self.policy = policy
        self.principal = principal

    async def rights(self, repository: str) -> frozenset[str]:
        principal = self.principal
        if principal is not None and principal.grants is not None:
            # A minted credential: its grants are the whole story (image repositories
            # are pushed only through them).
            return granted(principal.grants, repository)
        return await self.account_rights(repository)

    async def readable(self, repositories: list[str]) -> list[str]:
        """Those of `repositories` the account may pull, in the order given."""
        if self.policy.anonymous_pull:
            return repositories
        allowed = await self.authority.readable_repositories(self._account(), repositories)
        if self.principal is not None:
            allowed |= {name for name in repositories if self.policy.in_pull_through(name)}
        return [name for name in repositories if name in allowed]

    async def account_rights(self, repository: str) -> frozenset[str]:
        """What the account behind the credentials may do, however narrow the credential.

        Used only to tell whether a blob already exists somewhere the account can read, so
        that pushing through an image's credential still says "Layer already exists".
        """
        if self.policy.in_pull_through(repository):
            # Pull only, whoever asks (an admin too): the cache's content is the upstream's.
            anyone = self.principal is not None or self.policy.anonymous_pull
            return frozenset({PULL}) if anyone else frozenset()
        rights = await self.authority.allowed_actions(self._account(), repository)
        if self.principal is not None and self.principal.grants is not None:
            rights |= granted(self.principal.grants, repository)
        if self.policy.anonymous_pull:
            rights |= {PULL}
        return rights

    async def may_create(self, repository: str) -> bool:
        principal = self.principal
        if self.policy.in_pull_through(repository):
            return False  # only the cache itself creates repositories there
        if principal is None or principal.image_id is not None:
            # An image's credential pushes into its image's repository, which exists from the
            # image's creation: if it is gone, so is the image.
            return False
        return await self.authority.namespace_exists(repository)

    def _account(self) -> Principal | None:
        """The caller as its account, without the narrowing of a minted credential."""
        principal = self.principal
        if principal is None or principal.grants is None:
            return principal
        return replace(principal, grants=None)


class BearerAccess:
    def __init__(self, caller: _Caller, claims: Claims, realm: str) -> None:
        self.caller = caller
        self.claims = claims
        self.realm = realm

    async def allows(self, repository: str, action: str) -> bool:
        return action in self.claims.actions_for(repository)

    async def may_read(self, repository: str) -> bool:
        return PULL in await self.caller.account_rights(repository)

    async def readable(self, repositories: list[str]) -> list[str]:
        return await self.caller.readable(repositories)

    async def allows_catalog(self) -> bool:
        return self.claims.catalog

    async def may_create(self, repository: str) -> bool:
        return await self.caller.may_create(repository)

    async def refusal(self, repository: str | None, actions: tuple[str, ...]) -> RegistryError:
        # Docker's token spec: a token lacking the scope is answered 401 with
        # error="insufficient_scope", whether a wider token would help or not. docker, skopeo
        # and ctr then ask the token endpoint once more and, granted nothing more, stop at once
        # with the message below; a 403 would have docker retry the push for a minute.
        return challenge(
            self.realm,
            self.caller.policy.service,
            _scope(repository, actions),
            error="insufficient_scope",
            message=_denial(self.caller.principal, repository, actions),
        )


class DirectAccess:
    """Basic credentials or none on a /v2 request: the account's own rights apply."""

    def __init__(self, caller: _Caller, realm: str) -> None:
        self.caller = caller
        self.realm = realm

    async def allows(self, repository: str, action: str) -> bool:
        return action in await self.caller.rights(repository)

    async def may_read(self, repository: str) -> bool:
        return PULL in await self.caller.account_rights(repository)

    async def readable(self, repositories: list[str]) -> list[str]:
        return await self.caller.readable(repositories)

    async def allows_catalog(self) -> bool:
        return self.caller.principal is not None or self.caller.policy.anonymous_pull

    async def may_create(self, repository: str) -> bool:
        return await self.caller.may_create(repository)

    async def refusal(self, repository: str | None, actions: tuple[str, ...]) -> RegistryError:
        if self.caller.principal is None:
            return challenge(self.realm, self.caller.policy.service, _scope(repository, actions))
        return RegistryError(ErrorCode.DENIED, _denial(self.caller.principal, repository, actions))


def _denial(principal: Principal | None, repository: str | None, actions: tuple[str, ...]) -> str:
    """What was refused, in the same words whether the repository exists or not."""
    who = principal.name if principal is not None else "anonymous"
    if repository is None:
        return f"requested access to the resource is denied: {who} may not list the catalog"
    wanted = "/".join(sorted(set(actions)))
    return f"requested access to the resource is denied: {who} may not {wanted} {repository}"


def _scope(repository: str | None, actions: tuple[str, ...]) -> str:
    if repository is None:
        return CATALOG_SCOPE
    wanted = set(actions)
    if wanted & {"push"}:
        wanted.add(PULL)
    return f"repository:{repository}:{','.join(sorted(wanted))}"


def challenge(
    realm: str,
    service: str,
    scope: str | None,
    error: str | None = None,
    message: str | None = None,
) -> RegistryError:
    header = f'Bearer realm="{realm}",service="{service}"'
    if scope:
        header += f',scope="{scope}"'
    if error:
        header += f',error="{error}"'
    return RegistryError(ErrorCode.UNAUTHORIZED, message, headers={"WWW-Authenticate": header})


def _realm(request: web.Request) -> str:
    """Where clients get tokens: never taken from the Host header, which the client writes.

    A Host of the attacker's choosing in a challenge that a proxy caches would send other
    people's credentials to the attacker's realm. Without a configured public address, the
    local address the connection arrived on is one the client could reach.
    """
    base = request.app[AUTH_POLICY].public_base
    if base is None:
        base = f"{request.scheme}://{_local_address(request)}"
    return base + TOKEN_PATH


def _local_address(request: web.Request) -> str:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not isinstance(sockname, tuple) or len(sockname) < 2:
        return "127.0.0.1"
    host, port = str(sockname[0]), int(sockname[1])
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _basic_credentials(header: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


async def _principal_from_basic(
    authority: Authority, issuer: TokenIssuer, username: str, password: str
) -> Principal | None:
    """An account's API token, or a credential minted for an image (a JWT)."""
    if password.count(".") == 2:
        try:
            claims = issuer.verify(password)
        except InvalidToken:
            return None
        if claims.subject != username or (claims.limit is None and not claims.grants):
            return None
        limit = claims.limit or claims.grants
        return Principal(
            claims.subject, claims.admin, limit, claims.token_id, claims.expires, claims.image_id
        )
    return await authority.authenticate(username, password)


async def _is_live(request: web.Request, principal: Principal) -> bool:
    """Whether what the credential hangs on still stands: its API token and its image.

    Revoking the token or deleting the image bumps the change counter that the cache is
    stamped with, so the answer never lags behind either.
    """
    authority = request.app[AUTHORITY]
    checks: list[tuple[str, Callable[[str], Awaitable[bool]], str]] = []
    if principal.token_id is not None:
        checks.append((f"token:{principal.token_id}", authority.token_is_live, principal.token_id))
    if principal.image_id is not None:
        checks.append((f"image:{principal.image_id}", authority.image_is_live, principal.image_id))
    cache = request.app[REGISTRY].live_tokens
    for key, check, ref in checks:
        live = cache.get(key)
        if live is None:
            stamp = cache.stamp()
            live = await check(ref)
            cache.put(key, live, stamp)
        if not live:
            return False
    return True


async def _authenticate(request: web.Request) -> tuple[Principal | None, Claims | None]:
    """Who is calling. Raises 401 for credentials that are present but wrong or revoked."""
    authority = request.app[AUTHORITY]
    issuer = request.app[TOKENS]
    policy = request.app[AUTH_POLICY]
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        try:
            claims = issuer.verify(header[7:].strip())
        except InvalidToken:
            raise challenge(_realm(request), policy.service, None, error="invalid_token") from None
        principal = (
            Principal(
                claims.subject,
                claims.admin,
                claims.limit,
                claims.token_id,
                claims.expires,
                claims.image_id,
            )
            if claims.subject
            else None
        )
        if principal is not None and not await _is_live(request, principal):
            raise challenge(_realm(request), policy.service, None, error="invalid_token")
        return principal, claims
    if header[:6].lower() == "basic ":
        credentials = _basic_credentials(header)
        principal = None
        if credentials is not None:
            principal = await _principal_from_basic(authority, issuer, *credentials)
        if principal is None or not await _is_live(request, principal):
            raise challenge(_realm(request), policy.service, None)
        return principal, None
    return None, None


@web.middleware
async def registry_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/v2") or request.path == TOKEN_PATH:
        return await handler(request)
    if AUTHORITY not in request.app:
        return await handler(request)
    policy = request.app[AUTH_POLICY]
    principal, claims = await _authenticate(request)
    caller = _Caller(request.app[AUTHORITY], policy, principal)
    realm = _realm(request)
    if request.path == "/v2/" and principal is None and claims is None:
        # The version check is how docker login learns where to authenticate.
        raise challenge(realm, policy.service, None)
    if principal is not None:
        request[ACCOUNT_NAME] = principal.name
    request[ACCESS_KEY] = (
        BearerAccess(caller, claims, realm) if claims is not None else DirectAccess(caller, realm)
    )
    return await handler(request)


def _parse_scopes(values: list[str]) -> tuple[dict[str, frozenset[str]], bool]:
    repositories: dict[str, frozenset[str]] = {}
    catalog = False
    scopes = [s for value in values for s in value.split()]
    for scope in scopes[:_MAX_SCOPES]:
        if scope == CATALOG_SCOPE:
            catalog = True
            continue
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind != "repository" or not name or len(name) > MAX_NAME_LENGTH:
            continue
        try:
            check_name(name)
        except RegistryError:
            continue
        wanted = frozenset(a for a in actions.split(",") if a)
        if "*" in wanted:
            wanted = frozenset({"pull", "push", "delete"})
        repositories[name] = repositories.get(name, frozenset()) | wanted
    return repositories, catalog


def _narrowed_to(principal: Principal, claims: Claims) -> Principal:
    """A caller renewing with a registry token gets no more than that token holds.

    Its grants become the limit of whatever is issued now (within the limit it already had),
    and its expiry, API token and image carry over, so exchanging tokens never widens a scope
    nor stretches a lifetime.
    """
    held = claims.grants
    if claims.limit is not None:
        held = tuple(
            Grant(g.repository, g.actions & granted(claims.limit, g.repository)) for g in held
        )
    return replace(principal, grants=tuple(g for g in held if g.actions), expires=claims.expires)


async def token_endpoint(request: web.Request) -> web.Response:
    """GET (docker, skopeo, podman) or POST form (OAuth2 password grant) `/v2/token`."""
    policy = request.app[AUTH_POLICY]
    issuer = request.app[TOKENS]
    presented: Claims | None = None
    if request.method == "POST":
        form = await request.post()
        values = [str(v) for v in form.getall("scope", [])]
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        principal: Principal | None = None
        if username and password:
            principal = await _principal_from_basic(
                request.app[AUTHORITY], issuer, username, password
            )
            if principal is None or not await _is_live(request, principal):
                return error_response(ErrorCode.UNAUTHORIZED, "invalid username or token")
    else:
        values = request.query.getall("scope", [])
        try:
            principal, presented = await _authenticate(request)
        except RegistryError:
            return error_response(ErrorCode.UNAUTHORIZED, "invalid username or token")
    if principal is not None and presented is not None:
        principal = _narrowed_to(principal, presented)
    if principal is None and not policy.anonymous_pull:
        return error_response(
            ErrorCode.UNAUTHORIZED,
            "authentication required",
            headers={"WWW-Authenticate": f'Basic realm="{policy.service}"'},
        )
    caller = _Caller(request.app[AUTHORITY], policy, principal)
    wanted, catalog = _parse_scopes(values)
    if presented is not None:
        catalog = catalog and presented.catalog
    grants = [
        Grant(repository, actions & await caller.rights(repository))
        for repository, actions in wanted.items()
    ]
    ttl = policy.token_ttl
    if principal is not None and principal.expires is not None:
        ttl = min(ttl, principal.expires - time.time())
        if ttl <= 0:
            return error_response(ErrorCode.UNAUTHORIZED, "the credential has expired")
    token = issuer.issue(
        principal.name if principal else "",
        [g for g in grants if g.actions],
        ttl,
        limit=principal.grants if principal else None,
        catalog=catalog,
        admin=bool(principal and principal.admin),
        token_id=principal.token_id if principal else None,
        image_id=principal.image_id if principal else None,
    )
    issued = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    body = {
        "token": token,
        "access_token": token,
        "expires_in": int(ttl),
        "issued_at": issued,
    }
    return web.json_response(body)
