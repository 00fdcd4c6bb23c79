"""A small blocking registry client built for throughput, not features.

Uploads go out with `socket.sendfile` straight from the blob file (zero-copy, no Python loop over
the body), downloads are `readinto` a reused 4 MiB buffer and discarded: at several GB/s on
loopback, the client is never what limits a measurement.

Auth: anonymous, HTTP Basic, or Docker's token flow (401 with `WWW-Authenticate: Bearer realm=..,
service=..,scope=..` → GET realm with Basic credentials → `Authorization: Bearer <token>`).
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import BinaryIO

READ_BUFFER = 4 * 1024 * 1024
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class FileSlice:
    """`length` bytes of `file` from `offset`, sent as a request body with sendfile."""

    file: BinaryIO
    offset: int
    length: int


Body = bytes | FileSlice | None


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


class RegistryError(RuntimeError):
    pass


@dataclass(frozen=True)
class Pull:
    """A pulled blob's size, and the base URL of the server that sent its bytes."""

    size: int
    source: str


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="..",service="..",scope=".."` → ("bearer", {realm: .., ...})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))


class RegistryClient:
    """One keep-alive HTTP/1.1 connection to a registry at `base_url`, plus its auth state."""

    def __init__(self, base_url: str, username: str | None = None, password: str | None = None):
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"plain http URLs only: {base_url}")
        self.base_url = base_url.rstrip("/")
        self.host = parsed.hostname
        self.port = parsed.port or 80
        self.username = username
        self.password = password
        self.authorization: str | None = None
        self._conn: http.client.HTTPConnection | None = None

    # -- transport -----------------------------------------------------------------------------

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
            self._conn.connect()
        return self._conn

    def _target(self, path_or_url: str) -> str:
        """A request target (path + query) for a path or an absolute/relative Location."""
        url = urllib.parse.urljoin(self.base_url + "/", path_or_url)
        parts = urllib.parse.urlsplit(url)
        if (parts.hostname, parts.port or 80) != (self.host, self.port):
            raise RegistryError(f"refusing to follow {url}: not the registry under test")
        return parts.path + ("?" + parts.query if parts.query else "")

    def open(
        self,
        method: str,
        path_or_url: str,
        headers: dict[str, str] | None = None,
        body: Body = None,
    ) -> http.client.HTTPResponse:
        """Send one request and return the response with its body unread (the caller reads it).

        A kept-alive connection the server closed while idle is retried once on a new one (every
        body here can be sent again).
        """
        reused = self._conn is not None
        try:
            return self._open_once(method, path_or_url, headers, body)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.close()
            if not reused:
                raise
            return self._open_once(method, path_or_url, headers, body)

    def _open_once(
        self, method: str, path_or_url: str, headers: dict[str, str] | None, body: Body
    ) -> http.client.HTTPResponse:
        conn = self._connection()
        all_headers = dict(headers or {})
        if self.authorization and "Authorization" not in all_headers:
            all_headers["Authorization"] = self.authorization
        length = len(body) if isinstance(body, bytes) else body.length if body else 0
        if body is not None or method in ("PUT", "POST", "PATCH"):
            all_headers["Content-Length"] = str(length)
        try:
            conn.putrequest(method, self._target(path_or_url), skip_accept_encoding=True)
            for name, value in all_headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            if isinstance(body, bytes):
                conn.sock.sendall(body)
            elif isinstance(body, FileSlice):
                sent = conn.sock.sendfile(body.file, body.offset, body.length)
                if sent != body.length:
                    raise RegistryError(f"sendfile sent {sent} of {body.length} bytes")
        except (BrokenPipeError, ConnectionResetError):
            # The server may answer (401, 4xx) before reading the whole body and close:
            # its response is still worth reading (if there is none, open() retries or raises).
            pass
        try:
            response = conn.getresponse()
        except (http.client.HTTPException, OSError):
            self.close()
            raise
        if response.will_close:
            # http.client hands the socket to the response; the next request reconnects.
            self._conn = None
        return response

    def request(
        self,
        method: str,
        path_or_url: str,
        headers: dict[str, str] | None = None,
        body: Body = None,
        expect: tuple[int, ...] = (200, 201, 202, 204),
    ) -> Response:
        """Send a request with a fully read response; log in and retry once on a 401."""
        for attempt in (0, 1):
            raw = self.open(method, path_or_url, headers, body)
            response = Response(raw.status, raw.headers, raw.read())
            if response.status == 401 and attempt == 0 and self.login(response):
                continue
            break
        if response.status not in expect:
            raise RegistryError(
                f"{method} {path_or_url} -> {response.status}: {response.body[:500]!r}"
            )
        return response

    # -- auth ----------------------------------------------------------------------------------

    def login(self, unauthorized: Response) -> bool:
        """Answer a 401 challenge; True if there is a new Authorization header worth a retry."""
        if self.username is None or self.password is None:
            return False
        scheme, params = parse_challenge(unauthorized.header("WWW-Authenticate"))
        basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if scheme == "basic":
            self.authorization = f"Basic {basic}"
            return True
        if scheme != "bearer" or "realm" not in params:
            return False
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        token_url = params["realm"] + ("?" + urllib.parse.urlencode(query) if query else "")
        # The realm is this same server in beakerd's design; use a separate connection for it.
        realm = RegistryClient(token_url_base(token_url), None, None)
        try:
            answer = realm.request(
                "GET", token_url, headers={"Authorization": f"Basic {basic}"}, expect=(200,)
            )
        finally:
            realm.close()
        document = json.loads(answer.body)
        token = document.get("token") or document.get("access_token")
        if not token:
            raise RegistryError(f"token endpoint answered without a token: {answer.body[:200]!r}")
        self.authorization = f"Bearer {token}"
        return True

    def ensure_login(self, repo: str) -> None:
        """Get (fresh) push+pull credentials for `repo` before a timed run or a wrk run.

        Opening an upload session is the cheapest request that needs push rights; it is
        cancelled straight away so that no empty session lingers.
        """
        self.authorization = None
        location = self.start_upload(repo)
        self.request("DELETE", location, expect=(200, 202, 204, 404))

    # -- registry operations -------------------------------------------------------------------

    def start_upload(self, repo: str) -> str:
        response = self.request("POST", f"/v2/{repo}/blobs/uploads/", expect=(202,))
        location = response.header("Location")
        if not location:
            raise RegistryError("upload POST answered without a Location")
        return location

    def push_blob_monolithic(self, repo: str, body: FileSlice | bytes, digest: str) -> None:
        """POST to open an upload, then one PUT ?digest= carrying the whole blob."""
        location = self.start_upload(repo)
        self.request(
            "PUT",
            _with_query(location, digest=digest),
            headers={"Content-Type": "application/octet-stream"},
            body=body,
            expect=(201,),
        )

    def push_blob_chunked(self, repo: str, blob: FileSlice, digest: str, chunk_size: int) -> None:
        """POST, then PATCH chunks of `chunk_size` with Content-Range, then PUT ?digest=."""
        location = self.start_upload(repo)
        offset = 0
        while offset < blob.length:
            length = min(chunk_size, blob.length - offset)
            response = self.request(
                "PATCH",
                location,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + length - 1}",
                },
                body=FileSlice(blob.file, blob.offset + offset, length),
                expect=(202,),
            )
            location = response.header("Location") or location
            offset += length
        self.request("PUT", _with_query(location, digest=digest), expect=(201,))

    def pull_blob(self, repo: str, digest: str) -> int:
        """GET a blob, following redirects; the body is read and dropped. Returns its size."""
        return self.pull_blob_from(repo, digest).size

    def pull_blob_from(self, repo: str, digest: str) -> Pull:
        """GET a blob as a client would: a redirect to another loopback server (an object store's
        presigned URL) is followed on a new connection, without this registry's credentials
        (the URL carries its own signature). Says which server sent the bytes."""
        target = f"/v2/{repo}/blobs/{digest}"
        for _ in range(5):
            raw = self.open("GET", target)
            if raw.status == 401:
                unauthorized = Response(raw.status, raw.headers, raw.read())
                if not self.login(unauthorized):
                    raise RegistryError(f"GET {target} -> 401")
                continue
            if raw.status in (301, 302, 303, 307, 308):
                raw.read()
                target = raw.headers.get("Location", "")
                if not self._is_registry(target):
                    return Pull(read_elsewhere(target), token_url_base(target))
                continue
            return Pull(_read_blob(raw, target), self.base_url)
        raise RegistryError(f"GET {target}: too many redirects or logins")

    def _is_registry(self, location: str) -> bool:
        parts = urllib.parse.urlsplit(urllib.parse.urljoin(self.base_url + "/", location))
        return (parts.hostname, parts.port or 80) == (self.host, self.port)

    def put_manifest(self, repo: str, reference: str, manifest: bytes, media_type: str) -> None:
        self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            headers={"Content-Type": media_type},
            body=manifest,
            expect=(201,),
        )

    def get_manifest(self, repo: str, reference: str, media_type: str) -> bytes:
        return self.request(
            "GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": media_type}
        ).body


def _read_blob(raw: http.client.HTTPResponse, target: str) -> int:
    """Read a 200 response's body into a reused buffer and drop it; returns its length."""
    if raw.status != 200:
        raise RegistryError(f"GET {target} -> {raw.status}: {raw.read()[:300]!r}")
    view = memoryview(bytearray(READ_BUFFER))
    total = 0
    while n := raw.readinto(view):
        total += n
    return total


def read_elsewhere(url: str) -> int:
    """GET an absolute URL on another loopback server, once, on a connection of its own."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
        raise RegistryError(f"refusing to follow {url}: not a loopback http URL")
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=600)
    try:
        conn.request("GET", parts.path + ("?" + parts.query if parts.query else ""))
        return _read_blob(conn.getresponse(), url)
    finally:
        conn.close()


def token_url_base(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _with_query(location: str, **params: str) -> str:
    separator = "&" if "?" in location else "?"
    return location + separator + urllib.parse.urlencode(params)
