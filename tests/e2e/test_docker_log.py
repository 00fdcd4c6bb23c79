"""What the real docker client leaves in the log: no `UNKNOWN / 400` lines per push or pull.

Docker tries HTTPS first for a 127.0.0.1 registry (insecure by default), then falls back to
plain HTTP: each login, push and pull starts with a TLS ClientHello on the plain port, which
aiohttp used to answer as a bad request (`UNKNOWN / 400`, route="unmatched"). It is now
answered before aiohttp and counted as tls_on_plain, and docker still falls back.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.e2e.docker_engine import DockerEngine, build_scratch_image
from tests.ops.helpers import call, metric_value
from tests.server import Server

pytestmark = pytest.mark.e2e


def test_docker_push_and_pull_log_no_unknown_400_and_count_the_tls_probes(
    dockerd: DockerEngine, fresh_beakerd: Server, tmp_path: Path
) -> None:
    server = fresh_beakerd
    reference = f"{server.address}/tester/probed:v1"
    build_scratch_image(dockerd, reference, [("p.bin", os.urandom(20_000))], tmp_path)
    assert server.password is not None
    dockerd.cli(
        "login", "--username", server.username, "--password-stdin", server.address,
        input_text=server.password,
    )  # fmt: skip
    dockerd.cli("push", reference)
    dockerd.cli("rmi", reference)
    assert "Pull complete" in dockerd.cli("pull", reference).stdout
    metrics = call(server, "GET", "/metrics", auth=False).body.decode()
    probes = metric_value(metrics, "beakerd_connections_dropped_total", reason="tls_on_plain")
    assert probes >= 3  # login, push and pull each probed HTTPS first
    assert metric_value(metrics, "beakerd_http_requests_total", route="unmatched") == 0
    time.sleep(0.3)  # access lines are written in batches, a moment after the responses
    log = server.log()
    assert "UNKNOWN" not in log
    assert " 400 " not in log, log
    assert log.count("TLS handshake to this plain-HTTP port") == 1
