"""A chunked blob push by hand (POST, several PATCHes, PUT), so a test controls every chunk.

Credentials go as HTTP Basic with the bootstrap token, which /v2 accepts beside Docker's token
flow. `patch_partly` sends only the first part of a chunk's body and leaves the request hanging,
so that a test can kill the replica serving it.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tests.backends.cluster import Cluster

# A replica that dies mid-request: the connection breaks, or nginx answers 502 for it.
BROKEN = (OSError, http.client.HTTPException)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class ChunkedPush:
    cluster: Cluster
    repository: str
    data: bytes
    location: str = ""
    sent: int = 0
    _pending: http.client.HTTPConnection | None = field(default=None, repr=False)

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    @property
    def upload_id(self) -> str:
        return self.location.rsplit("/", 1)[-1].split("?", 1)[0]

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        password = self.cluster.password or ""
        login = base64.b64encode(f"{self.cluster.username}:{password}".encode()).decode()
        return {"Authorization": f"Basic {login}", **(extra or {})}

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.cluster.nginx.port, timeout=60)

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Answer:
        conn = self._connection()
        try:
            conn.request(method, path, body=body, headers=self._headers(headers))
            resp = conn.getresponse()
            return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def start(self) -> None:
        answer = self.request("POST", f"/v2/{self.repository}/blobs/uploads/")
        assert answer.status == 202, answer
        self._follow(answer)

    def _follow(self, answer: Answer) -> None:
        location = answer.headers["location"]
        parts = urlsplit(location)
        self.location = parts.path + (f"?{parts.query}" if parts.query else "")

    def patch(self, size: int) -> Answer:
        """The next `size` bytes as one chunk."""
        chunk = self.data[self.sent : self.sent + size]
        answer = self.request(
            "PATCH",
            self.location,
            chunk,
            {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{self.sent}-{self.sent + len(chunk) - 1}",
            },
        )
        assert answer.status == 202, answer
        self.sent += len(chunk)
        assert answer.headers["range"] == f"0-{self.sent - 1}"
        self._follow(answer)
        return answer

    def patch_partly(self, size: int, first: int) -> None:
        """Begin a chunk of `size` bytes but send only `first` of them; the request stays open."""
        chunk = self.data[self.sent : self.sent + size]
        conn = self._connection()
        conn.putrequest("PATCH", self.location)
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(chunk)),
            "Content-Range": f"{self.sent}-{self.sent + len(chunk) - 1}",
        }
        for name, value in self._headers(headers).items():
            conn.putheader(name, value)
        conn.endheaders()
        conn.send(chunk[:first])
        self._pending = conn

    def abandon_partial(self) -> None:
        """Give up on the hanging chunk (its replica is gone) and close its connection."""
        conn, self._pending = self._pending, None
        if conn is None:
            return
        try:
            conn.getresponse().read()
        except BROKEN:
            pass
        finally:
            conn.close()

    def resume(self) -> int:
        """Ask any replica how far the session got (GET on the session); continue from there."""
        answer = self.request("GET", self.location)
        assert answer.status == 204, answer
        self.sent = int(answer.headers["range"].split("-", 1)[1]) + 1
        self._follow(answer)
        return self.sent

    def finish(self) -> Answer:
        separator = "&" if "?" in self.location else "?"
        rest = self.data[self.sent :]
        answer = self.request(
            "PUT",
            f"{self.location}{separator}digest={self.digest}",
            rest,
            {"Content-Type": "application/octet-stream"},
        )
        assert answer.status == 201, answer
        return answer

    def pulled(self) -> bytes:
        """The blob as a client gets it: from the replica, or where it redirects (S3)."""
        answer = self.request("GET", f"/v2/{self.repository}/blobs/{self.digest}")
        if answer.status == 307:
            with urllib.request.urlopen(answer.headers["location"], timeout=60) as redirected:
                return bytes(redirected.read())
        assert answer.status == 200, answer
        return answer.body


def random_blob(size: int) -> bytes:
    return os.urandom(size)
