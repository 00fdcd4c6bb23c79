"""Small HTTP helpers for the operations tests: a new connection for every request."""

from __future__ import annotations

import base64
import http.client
import json
import socket
from dataclasses import dataclass
from typing import Any

from tests.server import Server


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def basic_auth(server: Server) -> dict[str, str]:
    assert server.password is not None
    creds = base64.b64encode(f"{server.username}:{server.password}".encode()).decode()
    return {"Authorization": f"Basic {creds}"}


def call(
    server: Server,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    auth: bool = True,
) -> Reply:
    """One request on a fresh connection (closed afterwards), so the kernel picks the worker."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        sent = dict(basic_auth(server) if auth else {})
        sent.update(headers or {})
        sent["Connection"] = "close"
        conn.request(method, path, body=body or None, headers=sent)
        resp = conn.getresponse()
        return Reply(resp.status, {k: v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Read one HTTP/1.1 response (status and raw bytes) from a raw socket until it closes."""
    data = b""
    while True:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data


def start_upload(server: Server, repository: str) -> str:
    reply = call(server, "POST", f"/v2/{repository}/blobs/uploads/")
    assert reply.status == 202, reply
    return reply.headers["Location"]


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 if none)."""
    total = 0.0
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            series = line.rpartition(" ")[0]
            if all(label in series for label in wanted):
                total += float(line.rpartition(" ")[2])
    return total
