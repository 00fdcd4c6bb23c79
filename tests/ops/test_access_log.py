"""One access-log line per request, as text or JSON, naming the account when it is known."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from beakerd.logging_setup import JsonFormatter
from tests.ops.helpers import call
from tests.server import running_beakerd


def _access_entries(log: str) -> list[dict[str, Any]]:
    entries = []
    for line in log.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry["logger"] == "beakerd.access":
                entries.append(entry)
    return entries


def test_json_access_log_has_method_path_status_bytes_duration_and_account(
    tmp_path: Path,
) -> None:
    with running_beakerd(tmp_path, ["--log-format", "json"]) as server:
        assert call(server, "GET", "/v2/_catalog?n=5").status == 200
        assert call(server, "GET", "/healthz", auth=False).status == 200
    log = server.log()  # after the server stopped: a line is written just after its response
    entries = _access_entries(log)
    catalog = next(e for e in entries if e["path"] == "/v2/_catalog?n=5")
    assert catalog["method"] == "GET"
    assert catalog["status"] == 200
    assert catalog["route"] == "/v2/_catalog"
    assert catalog["bytes_out"] > 0
    assert catalog["duration_ms"] >= 0
    assert catalog["account"] == server.username
    health = next(e for e in entries if e["path"] == "/healthz")
    assert health["account"] is None
    # Every line of the log is JSON, not only the access lines.
    assert all(line.startswith("{") for line in log.splitlines() if line.strip())


def test_text_access_log_is_one_readable_line_per_request(tmp_path: Path) -> None:
    with running_beakerd(tmp_path) as server:
        call(server, "GET", "/v2/tester/nothing/manifests/latest")
    log = server.log()
    lines = [line for line in log.splitlines() if "beakerd.access" in line]
    line = next(line for line in lines if "/v2/tester/nothing/manifests/latest" in line)
    assert " GET /v2/tester/nothing/manifests/latest 404 " in line
    assert "account=tester" in line
    assert "ms " in line


def test_access_log_can_be_turned_off(tmp_path: Path) -> None:
    with running_beakerd(tmp_path, ["--no-access-log"]) as server:
        call(server, "GET", "/healthz", auth=False)
    log = server.log()
    assert "beakerd.access" not in log


def test_json_formatter_keeps_extra_fields_and_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "beakerd.x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info()
        )
    record.repository = "tester/app"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "failed here"
    assert entry["level"] == "error"
    assert entry["repository"] == "tester/app"
    assert "ValueError: boom" in entry["exception"]
