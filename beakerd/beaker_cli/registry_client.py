"""A synchronous client of a registry's /v2 API, for pushing and pulling without a daemon.

Bodies stream both ways in 1 MiB blocks (http.client), so a layer of any size costs the same
memory. Authentication is Docker's token flow: a 401 challenge names the realm, which is asked
for a token with the ImageRepo's credentials (Basic), and the request is sent again once.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from beakerd.beaker_cli.errors import CliError
from beakerd.beaker_cli.models import RepositoryAuth
from beakerd.beaker_cli.oci import ACCEPT, Manifest, Readable, media_type_of, read_verified
from beakerd.beaker_cli.tls_trust import is_untrusted, untrusted

USER_AGENT = "beakerd-beaker-cli/0.1"
BLOCK_SIZE = 1 << 20
_TIMEOUT = 300.0
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


Body = Readable | bytes


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str
    address: str  # host:port


class RegistryClient:
    def __init__(
        self,
        endpoint: Endpoint,
        auth: RepositoryAuth | None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.auth = auth
        self.ssl_context = ssl_context
        self._tokens: dict[str, str] = {}

    # -- the calls a push and a pull make -------------------------------------------------------

    def blob_exists(self, repository: str, digest: str) -> bool:
        """Whether a push may skip the blob. Asked with push rights, as docker asks: a registry
        then also says yes for a blob the pusher may read in another repository."""
        response = self._send("HEAD", f"/v2/{repository}/blobs/{digest}", repository, push=True)
        if response.status not in {200, 404}:
            raise self._error(response, f"checking blob {digest}")
        response.read()
        return response.status == 200

    def upload_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        body: Readable,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """A monolithic upload: open a session, then PUT the whole blob with its digest."""
        started = self._send("POST", f"/v2/{repository}/blobs/uploads/", repository, push=True)
        if started.status != 202 or not started.getheader("Location"):
            raise self._error(started, f"starting the upload of {digest}")
        started.read()
        location = urllib.parse.urlsplit(started.getheader("Location") or "")
        query = urllib.parse.parse_qsl(location.query)
        query.append(("digest", digest))
        path = f"{location.path}?{urllib.parse.urlencode(query)}"
        reader = _CountingReader(body, progress) if progress is not None else body
        finished = self._send(
            "PUT",
            path,
            repository,
            push=True,
            body=reader,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        if finished.status != 201:
            raise self._error(finished, f"uploading {digest}")
        finished.read()

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> None:
        response = self._send(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            push=True,
            body=manifest.body,
            headers={"Content-Type": manifest.media_type},
        )
        if response.status != 201:
            raise self._error(response, f"pushing manifest {reference}")
        response.read()

    def get_manifest(self, repository: str, reference: str, size: int | None = None) -> Manifest:
        response = self._send(
            "GET", f"/v2/{repository}/manifests/{reference}", repository,
            headers={"Accept": ACCEPT},
        )  # fmt: skip
        if response.status != 200:
            raise self._error(response, f"reading manifest {reference}")
        digest = response.getheader("Docker-Content-Digest") or reference
        if ":" not in digest:
            raise CliError(f"the registry named no digest for {repository}:{reference}")
        length = size if size is not None else int(response.getheader("Content-Length") or -1)
        if length < 0:
            raise CliError(f"the registry sent manifest {reference} without a length")
        body = read_verified(response, length, digest)
        content_type = (response.getheader("Content-Type") or "").split(";")[0].strip()
        return Manifest(digest, media_type_of(body, content_type or None), body)

    def open_blob(self, repository: str, digest: str) -> http.client.HTTPResponse:
        """The blob's body as a stream, following a redirect to object storage once."""
        response = self._send("GET", f"/v2/{repository}/blobs/{digest}", repository)
        if response.status in {301, 302, 303, 307, 308} and response.getheader("Location"):
            response.read()
            response = _plain_get(response.getheader("Location") or "", self.ssl_context)
        if response.status != 200:
            raise self._error(response, f"reading blob {digest}")
        return response

    # -- the transport and Docker's token flow ---------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        repository: str,
        *,
        push: bool = False,
        body: Body | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        scope = f"repository:{repository}:{'pull,push' if push else 'pull'}"
        sent = dict(headers or {})
        token = self._tokens.get(scope)
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        response = self._request(method, path, body, sent)
        if response.status != 401 or token is not None or self.auth is None:
            return response
        if body is not None and not isinstance(body, bytes):
            # A stream cannot be sent twice. Every upload opens its session first (no body),
            # which is where the challenge comes, so streams go out with a token in hand.
            return response
        challenge = response.getheader("WWW-Authenticate") or ""
        response.read()
        if challenge.lower().startswith("basic"):
            sent["Authorization"] = _basic(self.auth)
        else:
            self._tokens[scope] = token = self._token(challenge, scope)
            sent["Authorization"] = f"Bearer {token}"
        return self._request(method, path, body, sent)

    def _token(self, challenge: str, scope: str) -> str:
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.get("realm")
        if not challenge.lower().startswith("bearer") or not realm:
            raise CliError(f"the registry asks for an authentication it does not name: {challenge}")
        query = urllib.parse.urlencode({"service": params.get("service", ""), "scope": scope})
        assert self.auth is not None
        response = _plain_get(
            f"{realm}?{query}", self.ssl_context, {"Authorization": _basic(self.auth)}
        )
        data = response.read(1 << 20)
        if response.status != 200:
            raise CliError(f"the registry refused the credentials ({response.status})")
        try:
            answer = json.loads(data)
            return str(answer.get("token") or answer["access_token"])
        except (ValueError, KeyError, AttributeError):
            raise CliError("the registry's token endpoint answered without a token") from None

    def _request(
        self,
        method: str,
        path: str,
        body: Body | None,
        headers: dict[str, str],
    ) -> http.client.HTTPResponse:
        connection = _connection(self.endpoint.scheme, self.endpoint.address, self.ssl_context)
        headers.setdefault("User-Agent", USER_AGENT)
        try:
            connection.request(method, path, body=body, headers=headers)
            return connection.getresponse()
        except (OSError, http.client.HTTPException) as e:
            connection.close()
            if is_untrusted(e):
                raise untrusted(f"the registry at {self.endpoint.address}", e) from None
            raise CliError(f"cannot reach the registry at {self.endpoint.address}: {e}") from None

    def _error(self, response: http.client.HTTPResponse, doing: str) -> CliError:
        return CliError(f"{doing} failed: {response.status} {_registry_message(response)}")


def _connection(
    scheme: str, address: str, ssl_context: ssl.SSLContext | None
) -> http.client.HTTPConnection:
    if scheme == "https":
        return http.client.HTTPSConnection(
            address, timeout=_TIMEOUT, context=ssl_context, blocksize=BLOCK_SIZE
        )
    return http.client.HTTPConnection(address, timeout=_TIMEOUT, blocksize=BLOCK_SIZE)


def _plain_get(
    url: str, ssl_context: ssl.SSLContext | None, headers: Mapping[str, str] | None = None
) -> http.client.HTTPResponse:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise CliError(f"the registry sent an unusable address: {url[:200]}")
    connection = _connection(parts.scheme, parts.netloc, ssl_context)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("GET", path, headers={"User-Agent": USER_AGENT, **(headers or {})})
        return connection.getresponse()
    except (OSError, http.client.HTTPException) as e:
        connection.close()
        raise CliError(f"cannot reach {parts.netloc}: {e}") from None


def _basic(auth: RepositoryAuth) -> str:
    raw = f"{auth.user}:{auth.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def _registry_message(response: http.client.HTTPResponse) -> str:
    """The first error of the spec's JSON body, or the status's reason."""
    try:
        errors = json.loads(response.read(64 << 10) or b"{}").get("errors") or []
        first = errors[0]
        return f"{first.get('code')}: {first.get('message')}"
    except (ValueError, AttributeError, IndexError, TypeError):
        return response.reason


class _CountingReader:
    """A body that tells how many bytes have gone out, as http.client reads it."""

    def __init__(self, inner: Readable, progress: Callable[[int], None]) -> None:
        self.inner = inner
        self.progress = progress

    def read(self, size: int = -1, /) -> bytes:
        data = self.inner.read(size)
        if data:
            self.progress(len(data))
        return data
