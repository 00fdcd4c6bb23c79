"""One in-process beakerd per test module, driven synchronously so hypothesis can drive it.

Hypothesis runs examples in a plain function; the app lives on an `asyncio.Runner` loop that
every example reuses. The bootstrap admin's API token is read back from the test's HOME, as
Beaker clients read it, and is sent as HTTP Basic on /v2 and as a bearer token on /api/v3.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.test_utils import TestClient, TestServer

from beakerd.app import create_app
from beakerd.settings import Settings
from registry.bodies import BODY_READ_TIMEOUT
from registry.errors import ErrorCode
from tests.fuzz.rawhttp import RawResponse, raw_request

T = TypeVar("T")
ADMIN = "tester"
# A file name no server would ever make: if it shows up anywhere, a traversal worked.
MARKER = "pwned-7f3c1e"
REGISTRY_CODES = {code.name for code in ErrorCode}
# What beakerd itself keeps at the top of its data folder.
DATA_ENTRIES = {"blobs", "uploads", "keys", "tls", "generation", "beakerd.db", "beakerd.db-wal",
                "beakerd.db-shm", "beakerd.db-journal"}  # fmt: skip


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        # aiohttp logs the requests its own parser rejects (with a 400) at ERROR: that is
        # the HTTP layer doing its job, not a failure inside beakerd.
        if record.exc_info and isinstance(record.exc_info[1], HttpProcessingError):
            return
        self.records.append(record)


@dataclass
class Harness:
    runner: asyncio.Runner
    client: TestClient[Any, Any]
    root: Path
    token: str
    errors: _Errors = field(default_factory=_Errors)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    def v2_auth(self) -> dict[str, str]:
        raw = base64.b64encode(f"{ADMIN}:{self.token}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}

    def api_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def raw(
        self,
        method: str,
        target: str | bytes,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        **kwargs: Any,
    ) -> RawResponse:
        """A raw request with the admin's credentials for whichever API `target` is on."""
        path = target if isinstance(target, str) else target.decode("latin-1")
        auth = self.api_auth() if path.startswith("/api/") else self.v2_auth()
        return self.run(
            raw_request(
                str(self.client.host), int(self.client.port or 0), method, target,
                {**auth, **(headers or {})}, body, **kwargs,
            )
        )  # fmt: skip

    def server_errors(self) -> list[str]:
        return [r.getMessage() for r in self.errors.records]


def start_harness(root: Path, **settings: Any) -> Harness:
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    runner = asyncio.Runner()
    app = create_app(Settings(data_dir=root / "data", bootstrap_account=ADMIN, **settings))
    # Small, so that stalled bodies end within a test; nothing here sends slowly on purpose
    # except the tests that prove the timeout.
    app[BODY_READ_TIMEOUT] = 1.0

    async def start() -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        return client

    client = runner.run(start())
    config = yaml.safe_load((home / ".beaker" / "config.yml").read_text())
    harness = Harness(runner, client, root, str(config["user_token"]))
    logging.getLogger().addHandler(harness.errors)
    return harness


def stop_harness(harness: Harness) -> None:
    logging.getLogger().removeHandler(harness.errors)
    harness.run(harness.client.close())
    harness.runner.close()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    root = tmp_path_factory.mktemp("hostile")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(root / "home"))
        mp.delenv("BEAKER_CONFIG", raising=False)
        h = start_harness(root)
        try:
            yield h
        finally:
            stop_harness(h)
    check_disk(h)


def check_disk(h: Harness) -> None:
    """Nothing outside the data folder, nothing odd in it, every blob whole."""
    assert {p.name for p in h.root.iterdir()} == {"data", "home"}
    assert {p.name for p in h.data_dir.iterdir()} <= DATA_ENTRIES
    for base in (h.root.parent, Path("/tmp")):
        found = (
            [p for p in base.rglob(f"*{MARKER}*")]
            if base != Path("/tmp")
            else [p for p in base.glob(f"*{MARKER}*")]
        )
        assert found == [], f"a hostile path reached the disk: {found}"
    for blob in (h.data_dir / "blobs").rglob("*"):
        if blob.is_file():
            algorithm = blob.relative_to(h.data_dir / "blobs").parts[0]
            assert hashlib.new(algorithm, blob.read_bytes()).hexdigest() == blob.name, blob


def assert_protocol_error(resp: RawResponse, target: str, method: str = "GET") -> None:
    """4xx in the protocol's own JSON format; never a 5xx, never a dropped connection."""
    assert not resp.dropped, f"{method} {target!r}: connection dropped without an answer"
    assert resp.status < 500, f"{method} {target!r}: {resp.status} {resp.body[:300]!r}"
    if resp.status < 400 or method == "HEAD" or (resp.status == 416 and not resp.body):
        return
    path = target.split("?", 1)[0]
    if _parser_rejection(resp):
        return
    body = resp.json()
    if path.startswith("/v2"):
        assert isinstance(body, dict) and isinstance(body.get("errors"), list), body
        for error in body["errors"]:
            assert error["code"] in REGISTRY_CODES, error
            assert isinstance(error["message"], str)
    elif path.startswith("/api/v3"):
        assert body["code"] == resp.status, body
        assert isinstance(body["message"], str) and body["message"], body


def _parser_rejection(resp: RawResponse) -> bool:
    """aiohttp's HTTP parser answers a request it cannot parse before any handler runs."""
    return resp.status == 400 and resp.headers.get("content-type", "").startswith("text/plain")
