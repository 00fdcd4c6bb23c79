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


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    service: str
    anonymous_pull: bool
    token_ttl: float


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
        return [name for name in repositories if name in allowed]

    async def account_rights(self, repository: str) -> frozenset[str]:
        """What the account behind the credentials may do, however narrow the credential.

        Used only to tell whether a blob already exists somewhere the account can read, so
        that pushing through an image's credential still says "Layer already exists".
        """
        rights = await self.authority.allowed_actions(self._account(), repository)
        if self.principal is not None and self.principal.grants is not None:
            rights |= granted(self.principal.grants, repository)
        if self.policy.anonymous_pull:
            rights |= {PULL}
        return rights

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

    async def refusal(self, repository: str | None, actions: tuple[str, ...]) -> RegistryError:
        # If the account could do it, the token is merely narrow: ask for a wider one.
        # An anonymous caller is asked to log in.
        if (
            repository is None
            or self.caller.principal is None
            or set(actions) <= await self.caller.rights(repository)
        ):
            return challenge(
                self.realm,
                self.caller.policy.service,
                _scope(repository, actions),
                error="insufficient_scope",
            )
        return RegistryError(ErrorCode.DENIED)


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

    async def refusal(self, repository: str | None, actions: tuple[str, ...]) -> RegistryError:
        if self.caller.principal is None:
            return challenge(self.realm, self.caller.policy.service, _scope(repository, actions))
        return RegistryError(ErrorCode.DENIED)


def _scope(repository: str | None, actions: tuple[str, ...]) -> str:
    if repository is None:
        return CATALOG_SCOPE
    wanted = set(actions)
    if wanted & {"push"}:
        wanted.add(PULL)
    return f"repository:{repository}:{','.join(sorted(wanted))}"


def challenge(
    realm: str, service: str, scope: str | None, error: str | None = None
) -> RegistryError:
    header = f'Bearer realm="{realm}",service="{service}"'
    if scope:
        header += f',scope="{scope}"'
    if error:
        header += f',error="{error}"'
    return RegistryError(ErrorCode.UNAUTHORIZED, headers={"WWW-Authenticate": header})


def _realm(request: web.Request) -> str:
    # The address the client used reaches us: the realm is given in the same terms.
    return f"{request.scheme}://{request.host}{TOKEN_PATH}"


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
        return Principal(claims.subject, claims.admin, limit, claims.token_id, claims.expires)
    return await authority.authenticate(username, password)


async def _token_is_live(request: web.Request, token_id: str | None) -> bool:
    if token_id is None:
        return True
    cache = request.app[REGISTRY].live_tokens
    live = cache.get(token_id)
    if live is None:
        stamp = cache.stamp()
        live = await request.app[AUTHORITY].token_is_live(token_id)
        cache.put(token_id, live, stamp)
    return live


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
        if not await _token_is_live(request, claims.token_id):
            raise challenge(_realm(request), policy.service, None, error="invalid_token")
        principal = (
            Principal(claims.subject, claims.admin, claims.limit, claims.token_id)
            if claims.subject
            else None
        )
        return principal, claims
    if header[:6].lower() == "basic ":
        credentials = _basic_credentials(header)
        principal = None
        if credentials is not None:
            principal = await _principal_from_basic(authority, issuer, *credentials)
        if principal is None or not await _token_is_live(request, principal.token_id):
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


async def token_endpoint(request: web.Request) -> web.Response:
    """GET (docker, skopeo, podman) or POST form (OAuth2 password grant) `/v2/token`."""
    policy = request.app[AUTH_POLICY]
    issuer = request.app[TOKENS]
    if request.method == "POST":
        form = await request.post()
        values = [str(v) for v in form.getall("scope", [])]
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        principal: Principal | None = None
        if username and password:
            principal = await _principal_from_basic(
                request.app[AUTHORITY], issuer, username, password
            )
            if principal is None:
                return error_response(ErrorCode.UNAUTHORIZED, "invalid username or token")
    else:
        values = request.query.getall("scope", [])
        try:
            principal, _ = await _authenticate(request)
        except RegistryError:
            return error_response(ErrorCode.UNAUTHORIZED, "invalid username or token")
    if principal is None and not policy.anonymous_pull:
        return error_response(
            ErrorCode.UNAUTHORIZED,
            "authentication required",
            headers={"WWW-Authenticate": f'Basic realm="{policy.service}"'},
        )
    caller = _Caller(request.app[AUTHORITY], policy, principal)
    wanted, catalog = _parse_scopes(values)
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
    )
    issued = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    body = {
        "token": token,
        "access_token": token,
        "expires_in": int(ttl),
        "issued_at": issued,
    }
    return web.json_response(body)
