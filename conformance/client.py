"""A small registry HTTP client: one request at a time, answering auth challenges as they come.

A 401 with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` is answered by fetching a
token from the realm (with HTTP Basic credentials when given, anonymously otherwise) and retrying
with ``Authorization: Bearer``; a ``Basic`` challenge is answered with the credentials themselves.
Every response is kept so the suite can check properties that must hold on all of them (the JSON
error format, ``Warning`` headers).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

# The part of a path that names the repository, for picking a cached token by scope.
_REPO_IN_PATH = re.compile(r"^/v2/(.+?)/(?:manifests|blobs|tags|referrers)/")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"|(\w+)=([^\s,]+)')


class SetupError(Exception):
    """A step that a workflow needs (not a requirement being checked) did not work."""


@dataclass
class Response:
    method: str
    url: str
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    request_headers: dict[str, str] = field(default_factory=dict)
    # The registry's own answer when it redirected (to object storage, say): the headers a
    # registry owes, such as Docker-Content-Digest, are on it, not on the store's.
    redirect_headers: CIMultiDictProxy[str] | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def registry_header(self, name: str) -> str | None:
        """A header of the registry's answer, the redirect's when the registry redirected."""
        if self.redirect_headers is not None and name in self.redirect_headers:
            return self.redirect_headers.get(name)
        return self.headers.get(name)

    def json(self) -> Any:
        return json.loads(self.body)

    def json_or_none(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def error_codes(self) -> list[str] | None:
        """The `code` of each entry in a spec-format error body; None when the body is not JSON."""
        doc = self.json_or_none()
        if doc is None:
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get("errors"), list):
            return []
        return [str(e.get("code")) for e in doc["errors"] if isinstance(e, dict)]

    def describe(self) -> str:
        parts = urlsplit(self.url)
        # Upload Locations can carry long opaque state; its first characters identify it enough.
        query = parts.query if len(parts.query) <= 100 else parts.query[:60] + "..."
        target = parts.path + (f"?{query}" if query else "")
        text = f"{self.method} {target} -> {self.status}"
        codes = self.error_codes() if self.status >= 400 else None
        if codes:
            text += f" {','.join(codes)}"
        return text


def parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    """Split a WWW-Authenticate value into its scheme and parameters."""
    scheme, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    for m in _CHALLENGE_PARAM.finditer(rest):
        key = m.group(1) or m.group(3)
        params[key.lower()] = m.group(2) if m.group(1) else m.group(4)
    return scheme.lower(), params


class RegistryClient:
    """Talks to one registry at `base_url`; use as an async context manager."""

    def __init__(self, base_url: str, username: str | None = None, password: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.responses: list[Response] = []
        self._session: aiohttp.ClientSession | None = None
        self._basic: str | None = None  # an Authorization value, once a Basic challenge came
        self._tokens: dict[str, str] = {}  # scope -> bearer token
        self._last_token: str | None = None

    async def __aenter__(self) -> RegistryClient:
        timeout = aiohttp.ClientTimeout(total=120)
        # Auto-decompression would hide what the registry actually sent; blobs are opaque bytes.
        self._session = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("RegistryClient must be used as an async context manager")
        return self._session

    def resolve(self, location: str, relative_to: str | None = None) -> str:
        """An absolute URL for a Location header value (the spec lets it be relative)."""
        return urljoin(relative_to or self.base_url + "/", location)

    def url_for(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return self.base_url + path_or_url

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
        follow_redirects: bool = False,
        anonymous: bool = False,
    ) -> Response:
        """One request; a 401 is answered once with credentials and the request retried."""
        url = self.url_for(path_or_url)
        resp = await self._send(method, url, headers, data, params, follow_redirects, anonymous)
        if resp.status == 401 and not anonymous:
            challenge = resp.header("WWW-Authenticate")
            if challenge and await self._answer(challenge):
                resp = await self._send(
                    method, url, headers, data, params, follow_redirects, anonymous
                )
        self.responses.append(resp)
        return resp

    async def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None,
        data: bytes | None,
        params: dict[str, str] | None,
        follow_redirects: bool,
        anonymous: bool,
    ) -> Response:
        hdrs: CIMultiDict[str] = CIMultiDict(headers or {})
        if not anonymous and "Authorization" not in hdrs:
            auth = self._authorization_for(url)
            if auth:
                hdrs["Authorization"] = auth
        # Locations from the registry may carry opaque, already-encoded query state: keep as is.
        target = URL(url, encoded=True)
        if params:
            target = target.update_query(params)
        async with self.session.request(
            method,
            target,
            headers=hdrs,
            data=data,
            allow_redirects=follow_redirects,
        ) as r:
            body = await r.read()
            first = r.history[0].headers if r.history else None
            return Response(method, str(r.url), r.status, r.headers, body, dict(hdrs), first)

    def _authorization_for(self, url: str) -> str | None:
        if self._basic is not None:
            return self._basic
        if not self._tokens and self._last_token is None:
            return None
        m = _REPO_IN_PATH.match(urlsplit(url).path)
        if m:
            # The newest token for the repository first: it answered the latest challenge.
            for scope, token in reversed(self._tokens.items()):
                if f"repository:{m.group(1)}:" in scope:
                    return f"Bearer {token}"
        return f"Bearer {self._last_token}" if self._last_token else None

    async def _answer(self, challenge: str) -> bool:
        """Obtain credentials for a challenge; False when there is nothing new to try."""
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if self.username is None or self.password is None or self._basic is not None:
                return False
            self._basic = basic_authorization(self.username, self.password)
            return True
        if scheme != "bearer" or "realm" not in params:
            return False
        query: dict[str, str] = {k: params[k] for k in ("service", "scope") if k in params}
        headers = (
            {"Authorization": basic_authorization(self.username, self.password)}
            if self.username is not None and self.password is not None
            else {}
        )
        async with self.session.get(params["realm"], params=query, headers=headers) as r:
            if r.status != 200:
                return False
            doc = await r.json(content_type=None)
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not token:
            return False
        scope = params.get("scope", "")
        self._tokens.pop(scope, None)  # re-inserted last: newest tokens are tried first
        self._tokens[scope] = str(token)
        self._last_token = str(token)
        return True

    # Push helpers used to set up content; failures here are setup errors, not check failures.

    async def push_blob(self, name: str, data: bytes, digest: str) -> None:
        """POST then PUT: the one blob upload every registry must support."""
        resp = await self.request("POST", f"/v2/{name}/blobs/uploads/")
        location = resp.header("Location")
        if resp.status != 202 or not location:
            raise SetupError(f"cannot start a blob upload: {resp.describe()}")
        resp = await self.request(
            "PUT",
            with_query(self.resolve(location, resp.url), digest=digest),
            headers={"Content-Type": "application/octet-stream"},
            data=data,
        )
        if resp.status != 201:
            raise SetupError(f"cannot push blob {digest}: {resp.describe()}")

    async def push_manifest(
        self, name: str, reference: str, body: bytes, media_type: str
    ) -> Response:
        resp = await self.request(
            "PUT",
            f"/v2/{name}/manifests/{reference}",
            headers={"Content-Type": media_type},
            data=body,
        )
        if resp.status != 201:
            raise SetupError(f"cannot push manifest {name}:{reference}: {resp.describe()}")
        return resp


def basic_authorization(username: str, password: str) -> str:
    """An HTTP Basic `Authorization` header value."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def with_query(url: str, **params: str) -> str:
    """Append query parameters to a URL that may already have some (an upload Location may)."""
    sep = "&" if urlsplit(url).query else "?"
    return url + sep + urlencode(params, safe=":")
