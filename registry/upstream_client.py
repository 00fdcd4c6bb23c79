"""An HTTP client for one upstream registry, speaking Docker's token flow.

A request is sent with the credentials already known for its scope; a 401 with
`WWW-Authenticate: Bearer realm=...,service=...,scope=...` gets a token from the realm (with the
upstream's username and password as Basic, if configured) and is sent once more; a 401 with a
Basic challenge is answered with Basic. Tokens are kept per scope until shortly before they
expire. Every failure becomes one of three exceptions: the proxy serves a stale copy on
`UpstreamUnavailable`, and answers the others as the upstream did.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from registry.upstreams import Upstream

# A token is renewed this long before the upstream says it expires.
_TOKEN_MARGIN_SECONDS = 30.0
# Docker's token spec: a token without `expires_in` lasts 60 s.
_DEFAULT_TOKEN_SECONDS = 60.0
_MAX_TOKEN_BODY = 64 << 10
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class UpstreamError(Exception):
    """The upstream could not answer as needed."""


class UpstreamUnavailable(UpstreamError):
    """Unreachable, timing out or failing (5xx): a cached copy may stand in."""


class UpstreamNotFound(UpstreamError):
    """The upstream says there is no such manifest or blob (404)."""


class UpstreamDenied(UpstreamError):
    """The upstream refused our credentials (401/403 after authenticating)."""


@dataclass(slots=True)
class _Token:
    value: str
    expires: float


class UpstreamClient:
    def __init__(self, upstream: Upstream, session: aiohttp.ClientSession) -> None:
        self.upstream = upstream
        self.session = session
        self._tokens: dict[str, _Token] = {}
        self._basic = False  # the upstream asked for Basic once: send it from then on
        self._token_locks: dict[str, asyncio.Lock] = {}

    @property
    def name(self) -> str:
        return self.upstream.name

    async def request(
        self, method: str, path: str, scope: str, headers: Mapping[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        """`method <url>/v2/<path>` with authentication; the caller reads and releases it.

        Returns 2xx responses only; raises UpstreamNotFound, UpstreamDenied or
        UpstreamUnavailable for the rest.
        """
        url = f"{self.upstream.url}/v2/{path}"
        response = await self._send(method, url, headers, self._auth_header(scope))
        if response.status == 401:
            challenge = response.headers.get("WWW-Authenticate", "")
            response.release()
            auth = await self._answer(challenge, scope)
            response = await self._send(method, url, headers, auth)
        if 200 <= response.status < 300:
            return response
        status = response.status
        response.release()
        if status == 404:
            raise UpstreamNotFound(f"{self.name}: {method} {path}: not found")
        if status in (401, 403):
            raise UpstreamDenied(f"{self.name}: {method} {path}: refused ({status})")
        if status == 429 or status >= 500:
            raise UpstreamUnavailable(f"{self.name}: {method} {path}: status {status}")
        raise UpstreamError(f"{self.name}: {method} {path}: unexpected status {status}")

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str] | None, auth: str | None
    ) -> aiohttp.ClientResponse:
        sent = dict(headers or {})
        if auth is not None:
            sent["Authorization"] = auth
        try:
            # Redirects (to a CDN for blobs) are followed; aiohttp drops Authorization when the
            # host changes, so the upstream's token never leaves for another host.
            return await self.session.request(method, url, headers=sent, allow_redirects=True)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise UpstreamUnavailable(f"{self.name}: {e.__class__.__name__}: {e}") from None

    def _auth_header(self, scope: str) -> str | None:
        token = self._tokens.get(scope)
        if token is not None and token.expires > time.monotonic():
            return f"Bearer {token.value}"
        if self._basic:
            return self._basic_header()
        return None

    def _basic_header(self) -> str | None:
        upstream = self.upstream
        if upstream.username is None or upstream.password is None:
            return None
        return aiohttp.encode_basic_auth(upstream.username, upstream.password.get_secret_value())

    async def _answer(self, challenge: str, scope: str) -> str | None:
        kind = challenge.split(" ", 1)[0].lower()
        if kind == "basic":
            self._basic = True
            return self._basic_header()
        if kind != "bearer":
            raise UpstreamDenied(f"{self.name}: authentication required, and no way offered")
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.get("realm")
        if not realm:
            raise UpstreamDenied(f"{self.name}: a Bearer challenge without a realm")
        async with self._token_locks.setdefault(scope, asyncio.Lock()):
            held = self._auth_header(scope)
            if held is not None and held.startswith("Bearer "):
                return held  # another request fetched it meanwhile
            token = await self._fetch_token(realm, params.get("service"), scope)
        self._tokens[scope] = token
        return f"Bearer {token.value}"

    async def _fetch_token(self, realm: str, service: str | None, scope: str) -> _Token:
        realm_parts = urlsplit(realm)
        if realm_parts.scheme not in {"http", "https"}:
            raise UpstreamDenied(f"{self.name}: token realm {realm!r} is not an http(s) URL")
        if realm_parts.scheme == "http" and urlsplit(self.upstream.url).scheme == "https":
            # The credentials must not cross the network in the clear.
            raise UpstreamDenied(f"{self.name}: token realm {realm!r} is not https")
        query = {"scope": scope}
        if service:
            query["service"] = service
        headers = {}
        basic = self._basic_header()
        if basic is not None:
            headers["Authorization"] = basic
        try:
            async with self.session.get(realm, params=query, headers=headers) as response:
                if response.status in (401, 403):
                    raise UpstreamDenied(f"{self.name}: the token endpoint refused our login")
                if response.status != 200:
                    raise UpstreamUnavailable(
                        f"{self.name}: token endpoint answered {response.status}"
                    )
                body = await response.content.read(_MAX_TOKEN_BODY)
                data = _json_object(body)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise UpstreamUnavailable(f"{self.name}: token endpoint: {e}") from None
        value = data.get("token") or data.get("access_token")
        if not isinstance(value, str) or not value:
            raise UpstreamDenied(f"{self.name}: the token endpoint gave no token")
        expires_in = data.get("expires_in")
        seconds = (
            float(expires_in)
            if isinstance(expires_in, int | float) and expires_in > 0
            else _DEFAULT_TOKEN_SECONDS
        )
        return _Token(value, time.monotonic() + max(seconds - _TOKEN_MARGIN_SECONDS, 1.0))


def _json_object(body: bytes) -> dict[str, object]:
    try:
        data = json.loads(body)
    except ValueError:
        raise UpstreamDenied("the token endpoint's answer is not JSON") from None
    if not isinstance(data, dict):
        raise UpstreamDenied("the token endpoint's answer is not a JSON object")
    return data
