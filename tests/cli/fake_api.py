"""A stand-in Beaker API on 127.0.0.1: canned answers per (method, raw path), every request kept."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Answer = tuple[int, Any]


@dataclass
class Request:
    method: str
    path: str  # raw, still percent-encoded, without the query
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeApi:
    url: str = ""
    routes: dict[tuple[str, str], Answer | Callable[[Request], Answer]] = field(
        default_factory=dict
    )
    requests: list[Request] = field(default_factory=list)

    def on(self, method: str, path: str, status: int, body: Any = None) -> None:
        self.routes[(method, "/api/v3" + path)] = (status, body)

    def calls(self, method: str | None = None) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests if method in (None, r.method)]


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _answer(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = Request(
                self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()),
                json.loads(raw) if raw else None,
            )  # fmt: skip
            api.requests.append(request)
            route = api.routes.get((self.command, parts.path))
            if route is None:
                status, body = 404, {"code": 404, "message": f"no route {parts.path}"}
            elif callable(route):
                status, body = route(request)
            else:
                status, body = route
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            if body is None:
                data = b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _answer

    return Handler


def serve() -> Iterator[FakeApi]:
    api = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


ALICE = {"id": "us_alice0000001", "name": "alice", "displayName": "Alice A."}


def image(image_id: str = "bp_abcdefghijkl", name: str = "hello", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": image_id, "name": name, "fullName": f"alice/{name}", "owner": ALICE,
        "author": ALICE, "workspaceRef": {"id": "ws_1", "name": "default",
                                          "fullName": "alice/default"},
        "created": "2024-01-02T03:04:05.123456Z", "committed": "2024-01-02T03:04:09Z",
        "originalTag": "hello", "dockerTag": "127.0.0.1:5000/r1", "description": "says hi",
    }  # fmt: skip
    body.update(extra)
    return body
