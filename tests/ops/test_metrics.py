"""/metrics: Prometheus text: requests by route pattern, bytes, latency and stored data."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from beakerd import metrics
from tests.ops.helpers import call, start_upload
from tests.server import Server


@pytest.fixture
def clean_metrics() -> Iterator[None]:
    metrics.reset()
    yield
    metrics.reset()
    metrics._worker = None


def _samples(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def test_exposition_has_help_type_and_cumulative_histogram_buckets(clean_metrics: None) -> None:
    metrics.http_requests.inc(1, ("/v2/", "GET", "200"))
    metrics.http_duration.observe(0.003, ("/v2/", "GET"))
    metrics.http_duration.observe(0.2, ("/v2/", "GET"))
    text = metrics.render(None)
    assert "# TYPE beakerd_http_requests_total counter" in text
    assert "# TYPE beakerd_http_request_duration_seconds histogram" in text
    samples = _samples(text)
    assert samples['beakerd_http_requests_total{route="/v2/",method="GET",status="200"}'] == 1
    bucket = 'beakerd_http_request_duration_seconds_bucket{route="/v2/",method="GET",le="%s"}'
    assert samples[bucket % "0.001"] == 0
    assert samples[bucket % "0.005"] == 1
    assert samples[bucket % "0.25"] == 2
    assert samples[bucket % "+Inf"] == 2
    assert samples['beakerd_http_request_duration_seconds_count{route="/v2/",method="GET"}'] == 2


def test_gc_modules_bump_a_counter_through_the_module_api(clean_metrics: None) -> None:
    metrics.gc_runs.inc()
    metrics.gc_runs.inc()
    metrics.gc_blobs_removed.inc(3)
    samples = _samples(metrics.render(None))
    assert samples["beakerd_gc_runs_total"] == 2
    assert samples["beakerd_gc_blobs_removed_total"] == 3


def test_label_values_are_escaped(clean_metrics: None) -> None:
    metrics.http_requests.inc(1, ('/a"b\\c', "GET", "200"))
    assert 'route="/a\\"b\\\\c"' in metrics.render(None)


def test_a_scrape_sums_the_other_workers_snapshots(clean_metrics: None, tmp_path: Path) -> None:
    metrics.join_workers(0, tmp_path)
    metrics.http_requests.inc(2, ("/v2/", "GET", "200"))
    metrics.http_duration.observe(0.01, ("/v2/", "GET"))
    metrics.write_snapshot()  # worker 0's own file is not counted twice
    other = {
        metrics.http_requests.name: {"values": [[["/v2/", "GET", "200"], 5]]},
        metrics.http_duration.name: {
            "values": [[["/v2/", "GET"], [0.0] * 5 + [1.0] + [0.0] * 10 + [0.02]]]
        },
        metrics.gc_runs.name: {"values": [[[], 1]]},
    }
    (metrics.snapshot_folder(tmp_path) / "worker-1.json").write_text(json.dumps(other))
    samples = _samples(metrics.render(None, metrics._other_snapshots()))
    assert samples['beakerd_http_requests_total{route="/v2/",method="GET",status="200"}'] == 7
    assert samples['beakerd_http_request_duration_seconds_count{route="/v2/",method="GET"}'] == 2
    assert samples["beakerd_gc_runs_total"] == 1


def test_server_counts_requests_by_route_pattern_and_reports_stored_data(
    fresh_beakerd: Server,
) -> None:
    data = os.urandom(4096)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = start_upload(fresh_beakerd, "tester/metrics-a")
    assert call(fresh_beakerd, "PUT", f"{location}?digest={digest}", data).status == 201
    start_upload(fresh_beakerd, "tester/metrics-b")  # left open: one upload in progress
    for _ in range(3):
        assert call(fresh_beakerd, "HEAD", f"/v2/tester/metrics-a/blobs/{digest}").status == 200

    reply = call(fresh_beakerd, "GET", "/metrics", auth=False)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = reply.body.decode()
    samples = _samples(text)
    blob_route = 'route="/v2/{name}/blobs/{digest}"'
    assert samples[f'beakerd_http_requests_total{{{blob_route},method="HEAD",status="200"}}'] == 3
    # Raw paths never become labels: the cardinality stays bounded by the route table.
    assert "metrics-a" not in text and digest not in text
    upload_route = 'route="/v2/{name}/blobs/uploads/{upload_id}"'
    assert samples[f"beakerd_http_request_bytes_total{{{upload_route}}}"] >= len(data)
    assert samples[f"beakerd_http_response_bytes_total{{{blob_route}}}"] > 0
    assert re.search(
        r'beakerd_http_request_duration_seconds_bucket\{route="/v2/\{name\}/blobs/'
        r'\{digest\}",method="HEAD",le="\+Inf"\} 3',
        text,
    )
    assert samples["beakerd_stored_blobs"] == 1
    assert samples["beakerd_stored_blob_bytes"] == len(data)
    assert samples["beakerd_uploads_in_progress"] == 1


async def test_background_gc_passes_are_counted(clean_metrics: None, tmp_path: Path) -> None:
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from beakerd.app import create_app
    from beakerd.settings import Settings

    app = create_app(Settings(data_dir=tmp_path / "data", gc_interval_seconds=0.05))
    async with TestClient(TestServer(app)):
        for _ in range(200):
            if metrics.gc_runs.values.get((), 0) >= 2:
                break
            await asyncio.sleep(0.05)
    assert _samples(metrics.render(None))["beakerd_gc_runs_total"] >= 2
