"""A chunked upload outlives the server process that took its first chunks."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import urllib.request

from tests.server import Server


def _request(
    server: Server, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str]]:
    creds = base64.b64encode(f"{server.username}:{server.password}".encode()).decode()
    req = urllib.request.Request(
        server.url + path,
        data=body or None,
        method=method,
        headers={"Authorization": f"Basic {creds}", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers)


def test_chunked_upload_resumes_after_restart_and_kill(fresh_beakerd: Server) -> None:
    data = os.urandom(3 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, headers = _request(fresh_beakerd, "POST", "/v2/tester/resume/blobs/uploads/")
    assert status == 202
    location = headers["Location"]
    third = len(data) // 3
    status, headers = _request(
        fresh_beakerd, "PATCH", location, data[:third], {"Content-Range": f"0-{third - 1}"}
    )
    assert status == 202
    fresh_beakerd.restart()
    status, headers = _request(fresh_beakerd, "GET", location)
    assert status == 204
    assert headers["Range"] == f"0-{third - 1}"
    status, headers = _request(
        fresh_beakerd,
        "PATCH",
        location,
        data[third : 2 * third],
        {"Content-Range": f"{third}-{2 * third - 1}"},
    )
    assert status == 202
    fresh_beakerd.stop(signal.SIGKILL)
    fresh_beakerd.restart()
    status, headers = _request(
        fresh_beakerd, "PUT", f"{location}?digest={digest}", data[2 * third :]
    )
    assert status == 201, headers
    req = urllib.request.Request(
        f"{fresh_beakerd.url}/v2/tester/resume/blobs/{digest}",
        headers={
            "Authorization": "Basic "
            + base64.b64encode(
                f"{fresh_beakerd.username}:{fresh_beakerd.password}".encode()
            ).decode()
        },
    )
    with urllib.request.urlopen(req) as resp:
        assert hashlib.sha256(resp.read()).hexdigest() == digest.split(":")[1]
