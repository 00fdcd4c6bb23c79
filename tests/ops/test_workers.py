"""`--workers N`: N processes on one port over one data folder, supervised, stopped together."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import time
from pathlib import Path

from tests.ops.helpers import call, start_upload
from tests.server import running_beakerd

CHUNKS = 48


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _patch_count(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("beakerd_http_requests_total{") and 'method="PATCH"' in line:
            total += float(line.rpartition(" ")[2])
    return total


def test_chunked_upload_continues_on_whichever_worker_takes_each_chunk(tmp_path: Path) -> None:
    data = os.urandom(CHUNKS * 64 * 1024 + 123)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    size = -(-len(data) // CHUNKS)
    with running_beakerd(tmp_path, ["--workers", "2"]) as server:
        location = start_upload(server, "tester/spread")
        for start in range(0, len(data), size):
            chunk = data[start : start + size]
            # A new connection per chunk: the kernel spreads them over the workers.
            reply = call(
                server,
                "PATCH",
                location,
                chunk,
                {"Content-Range": f"{start}-{start + len(chunk) - 1}"},
            )
            assert reply.status == 202, reply
            location = reply.headers["Location"]
        assert call(server, "PUT", f"{location}?digest={digest}").status == 201
        blob = call(server, "GET", f"/v2/tester/spread/blobs/{digest}")
        assert blob.status == 200 and blob.body == data

        # Any worker's /metrics counts every worker's requests (snapshots every few seconds).
        deadline = time.monotonic() + 30
        while _patch_count(call(server, "GET", "/metrics", auth=False).body.decode()) < CHUNKS:
            assert time.monotonic() < deadline, "metrics never summed the workers' PATCHes"
            time.sleep(0.2)

        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0
    log = server.log()
    patch_pids = set(re.findall(r"beakerd\.access\[(\d+)\]: PATCH ", log))
    assert len(patch_pids) == 2, log  # both workers took chunks
    # SIGTERM to the supervisor stopped every worker.
    assert not any(_alive(int(pid)) for pid in patch_pids)
    # The first-start bootstrap ran once, in the supervisor, before any worker started.
    assert log.count("created admin account") == 1


def test_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    with running_beakerd(tmp_path, ["--workers", "2"]) as server:
        deadline = time.monotonic() + 30
        while not (served := re.findall(r"beakerd\.access\[(\d+)\]", server.log())):
            # Access lines are written in batches, a moment after the responses.
            assert time.monotonic() < deadline, server.log()
            call(server, "GET", "/healthz", auth=False)
            time.sleep(0.05)
        victim = int(served[0])
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while "starting another" not in server.log():
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        # The port keeps answering, now from the survivor and the replacement.
        for _ in range(20):
            assert call(server, "GET", "/healthz", auth=False).status == 200
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0
    assert f"(pid {victim}) exited" in server.log()
