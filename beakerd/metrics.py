"""Prometheus metrics at `/metrics`, in the text exposition format (version 0.0.4).

Written by hand rather than with `prometheus_client`: what is needed is a few counters and one
histogram family, and the hand-made ones cost a dict update per request (the manifest GET path is
benchmarked), need no lock (one event loop per process), and are merged across `--workers`
processes through small snapshot files instead of prometheus_client's multiprocess directory mode.

Using it from other modules (the API is these module-level objects):

    from beakerd import metrics
    metrics.gc_runs.inc()                 # after each garbage-collection pass
    metrics.gc_blobs_removed.inc(n)       # blobs it deleted
    metrics.gc_bytes_freed.inc(size)      # bytes it freed
    metrics.record_gc(report)             # all three from a storage.gc.GcReport

storage/ must not import beakerd/ (imports point down), so the code in beakerd/ that runs a GC
pass bumps these, or hands `metrics.record_gc` to the GC loop as a per-pass callback.

Request metrics are recorded by the access logger (beakerd/access_log.py), which aiohttp calls
once per request after the response is written. Gauges about stored data come from the
database when scraped, cached for a few seconds.

Several workers: each process counts its own requests and writes a snapshot of its counters
to `<data_dir>/run/metrics/worker-<i>.json` every few seconds; a scrape, whichever worker
answers it, sums its live counters with the other workers' snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from storage.database import Database
from storage.outbox import Outbox
from storage.quotas import Quotas

log = logging.getLogger("beakerd.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Database gauges are recomputed at most this often (a count over the blobs table).
GAUGE_CACHE_SECONDS = 5.0
# How often a worker publishes its counters for the others to include.
SNAPSHOT_SECONDS = 2.0

Labels = tuple[str, ...]
CleanupContext = Callable[[web.Application], AsyncIterator[None]]


class Counter:
    """A monotonically increasing value per label set."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(label_names)
        self.values: dict[Labels, float] = {}

    def inc(self, amount: float = 1.0, labels: Labels = ()) -> None:
        values = self.values
        values[labels] = values.get(labels, 0.0) + amount

    def snapshot(self) -> dict[str, Any]:
        return {"values": [[list(k), v] for k, v in self.values.items()]}

    def samples(self, others: Iterable[dict[str, Any]]) -> list[str]:
        merged = dict(self.values)
        for other in others:
            for key, value in other.get("values", []):
                k = tuple(key)
                merged[k] = merged.get(k, 0.0) + float(value)
        return [
            f"{self.name}{_labels(self.label_names, k)} {_number(v)}"
            for k, v in sorted(merged.items())
        ]


class Histogram:
    """Observations counted into cumulative `le` buckets per label set, with sum and count."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        label_names: Sequence[str],
        buckets: Sequence[float],
    ) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(label_names)
        self.bounds = tuple(sorted(buckets))
        # Per label set: counts per bucket (non-cumulative; the last one is +Inf), then the sum.
        self.values: dict[Labels, list[float]] = {}

    def observe(self, value: float, labels: Labels = ()) -> None:
        row = self.values.get(labels)
        if row is None:
            row = self.values[labels] = [0.0] * (len(self.bounds) + 2)
        row[bisect_left(self.bounds, value)] += 1
        row[-1] += value

    def snapshot(self) -> dict[str, Any]:
        return {"values": [[list(k), v] for k, v in self.values.items()]}

    def samples(self, others: Iterable[dict[str, Any]]) -> list[str]:
        merged = {k: list(v) for k, v in self.values.items()}
        for other in others:
            for key, row in other.get("values", []):
                k = tuple(key)
                if len(row) != len(self.bounds) + 2:
                    continue  # written by a build with other buckets
                mine = merged.setdefault(k, [0.0] * len(row))
                for i, value in enumerate(row):
                    mine[i] += float(value)
        lines: list[str] = []
        le_names = (*self.label_names, "le")
        for k, row in sorted(merged.items()):
            cumulative = 0.0
            for bound, count in zip((*self.bounds, math.inf), row[:-1], strict=True):
                cumulative += count
                le = "+Inf" if bound == math.inf else _number(bound)
                bucket = _labels(le_names, (*k, le))
                lines.append(f"{self.name}_bucket{bucket} {_number(cumulative)}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, k)} {_number(row[-1])}")
            lines.append(f"{self.name}_count{_labels(self.label_names, k)} {_number(cumulative)}")
        return lines


Metric = Counter | Histogram


class GcOutcome(Protocol):
    """What record_gc reads from a pass's report (storage/gc.py GcReport has these)."""

    @property
    def blobs(self) -> int: ...

    @property
    def freed_bytes(self) -> int: ...


class ScrubOutcome(Protocol):
    """What record_scrub reads from a pass's report (storage/scrub.py ScrubReport)."""

    @property
    def corrupt(self) -> Sequence[str]: ...


# -- the metrics of this process -----------------------------------------------------------------

http_requests = Counter(
    "beakerd_http_requests_total",
    "HTTP requests answered, by route pattern, method and status code.",
    ("route", "method", "status"),
)
http_request_bytes = Counter(
    "beakerd_http_request_bytes_total",
    "Bytes of request bodies received, by route pattern.",
    ("route",),
)
http_response_bytes = Counter(
    "beakerd_http_response_bytes_total",
    "Bytes sent in responses (headers and body), by route pattern.",
    ("route",),
)
http_duration = Histogram(
    "beakerd_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by route pattern and method.",
    ("route", "method"),
    (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
http_client_disconnects = Counter(
    "beakerd_http_client_disconnects_total",
    "Requests whose client closed the connection before the answer, by route pattern and method.",
    ("route", "method"),
)
connections_dropped = Counter(
    "beakerd_connections_dropped_total",
    "Connections closed before serving a request, by reason: tls_on_plain, http_on_tls,"
    " head_timeout, tls_handshake_failed, evicted (longest-idle, at max_connections).",
    ("reason",),
)
gc_runs = Counter("beakerd_gc_runs_total", "Garbage-collection passes completed.")
gc_blobs_removed = Counter("beakerd_gc_blobs_removed_total", "Blobs deleted by garbage collection.")
gc_bytes_freed = Counter("beakerd_gc_bytes_freed_total", "Bytes freed by garbage collection.")
scrub_passes = Counter("beakerd_scrub_passes_total", "Scrub passes over every stored blob.")
scrub_corrupt = Counter(
    "beakerd_scrub_corrupt_blobs_total", "Corrupt blob files the scrub found and took out."
)
retention_runs = Counter("beakerd_retention_runs_total", "Retention passes completed.")
retention_removed = Counter(
    "beakerd_retention_removed_total", "Tags and manifests retention removed, by kind.", ("kind",)
)


class RetentionOutcome(Protocol):
    """What record_retention reads (storage/retention.py RetentionReport)."""

    @property
    def tags(self) -> Sequence[object]: ...

    @property
    def manifests(self) -> Sequence[object]: ...


def record_retention(report: RetentionOutcome) -> None:
    retention_runs.inc()
    retention_removed.inc(len(report.tags), ("tag",))
    retention_removed.inc(len(report.manifests), ("manifest",))


def record_gc(report: GcOutcome) -> None:
    """Count one finished GC pass and what it removed (hand this to the GC loop as a callback)."""
    gc_runs.inc()
    gc_blobs_removed.inc(report.blobs)
    gc_bytes_freed.inc(report.freed_bytes)


def record_scrub(report: ScrubOutcome) -> None:
    """Count one finished scrub pass and the corrupt blobs it found."""
    scrub_passes.inc()
    scrub_corrupt.inc(len(report.corrupt))


METRICS: tuple[Metric, ...] = (
    http_requests,
    http_request_bytes,
    http_response_bytes,
    http_duration,
    http_client_disconnects,
    connections_dropped,
    gc_runs,
    gc_blobs_removed,
    gc_bytes_freed,
    scrub_passes,
    scrub_corrupt,
    retention_runs,
    retention_removed,
)


@dataclass
class WorkerSlot:
    """This process's place among `--workers` processes: where counters are shared."""

    index: int
    folder: Path

    @property
    def path(self) -> Path:
        return self.folder / f"worker-{self.index}.json"


_worker: WorkerSlot | None = None


def snapshot_folder(data_dir: Path) -> Path:
    return data_dir / "run" / "metrics"


def join_workers(index: int, data_dir: Path) -> None:
    """Called in each worker process (by beakerd/workers.py) before it serves."""
    global _worker
    _worker = WorkerSlot(index, snapshot_folder(data_dir))
    _worker.folder.mkdir(parents=True, exist_ok=True)


def reset() -> None:
    """Forget every count (a freshly forked worker starts from zero; also for tests)."""
    for metric in METRICS:
        metric.values.clear()


def write_snapshot() -> None:
    if _worker is None:
        return
    data = {metric.name: metric.snapshot() for metric in METRICS}
    staged = _worker.path.with_suffix(f".{os.getpid()}.tmp")
    staged.write_text(json.dumps(data, separators=(",", ":")))
    os.replace(staged, _worker.path)


def _other_snapshots() -> list[dict[str, Any]]:
    if _worker is None:
        return []
    found = []
    for path in sorted(_worker.folder.glob("worker-*.json")):
        if path == _worker.path:
            continue
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # being replaced, or left half-written by a killed worker
    return found


# -- gauges from the database --------------------------------------------------------------------


@dataclass
class StoredData:
    blobs: int
    blob_bytes: int
    repositories: int
    uploads_in_progress: int
    # account -> (bytes used, quota or None)
    accounts: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    # pending, dropped_overflow, dropped_failed, dropped_unconfigured
    webhooks: dict[str, int] = field(default_factory=dict)


class DataGauges:
    """Counts over the database, recomputed at most every GAUGE_CACHE_SECONDS."""

    def __init__(
        self, db: Database, quotas: Quotas | None = None, outbox: Outbox | None = None
    ) -> None:
        self.db = db
        self.quotas = quotas
        self.outbox = outbox
        self._value: StoredData | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> StoredData:
        async with self._lock:
            now = time.monotonic()
            if self._value is None or now - self._at > GAUGE_CACHE_SECONDS:
                self._value = await self._query()
                self._at = now
            return self._value

    async def _query(self) -> StoredData:
        blobs = await self.db.fetchone(
            "SELECT count(*) AS n, coalesce(sum(size), 0) AS b FROM blobs"
        )
        repos = await self.db.fetchone("SELECT count(*) AS n FROM repositories")
        uploads = await self.db.fetchone("SELECT count(*) AS n FROM uploads")
        usages = await self.quotas.usages() if self.quotas is not None else []
        return StoredData(
            blobs=int(blobs["n"]) if blobs else 0,
            blob_bytes=int(blobs["b"]) if blobs else 0,
            repositories=int(repos["n"]) if repos else 0,
            uploads_in_progress=int(uploads["n"]) if uploads else 0,
            accounts={u.account: (u.used, u.limit) for u in usages},
            webhooks=await self.outbox.stats() if self.outbox is not None else {},
        )


DATA_GAUGES = web.AppKey("beakerd.data_gauges", DataGauges)
# Set by the app's storage context when it has them: per-account usage and the webhook outbox.
QUOTAS = web.AppKey("beakerd.quotas", Quotas)
OUTBOX = web.AppKey("beakerd.outbox", Outbox)


def _gauge(name: str, help_text: str, value: float) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {_number(value)}"]


def render(stored: StoredData | None, others: Sequence[dict[str, Any]] = ()) -> str:
    """The exposition text: this process's counters plus `others` (other workers' snapshots)."""
    lines: list[str] = []
    for metric in METRICS:
        lines.append(f"# HELP {metric.name} {metric.help}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        lines.extend(metric.samples(o.get(metric.name, {}) for o in others))
    if stored is not None:
        lines += _gauge("beakerd_stored_blobs", "Blobs in the store.", stored.blobs)
        lines += _gauge("beakerd_stored_blob_bytes", "Bytes of stored blobs.", stored.blob_bytes)
        lines += _gauge("beakerd_repositories", "Registry repositories.", stored.repositories)
        lines += _gauge(
            "beakerd_uploads_in_progress",
            "Blob upload sessions started and not yet finished or cancelled.",
            stored.uploads_in_progress,
        )
        lines += _account_gauges(stored.accounts)
        lines += _webhook_gauges(stored.webhooks)
    return "\n".join(lines) + "\n"


def _account_gauges(accounts: dict[str, tuple[int, int | None]]) -> list[str]:
    lines = [
        "# HELP beakerd_account_storage_bytes Bytes of distinct blobs an account holds.",
        "# TYPE beakerd_account_storage_bytes gauge",
    ]
    lines += [
        f"beakerd_account_storage_bytes{_labels(('account',), (name,))} {_number(used)}"
        for name, (used, _) in sorted(accounts.items())
    ]
    lines += [
        "# HELP beakerd_account_quota_bytes An account's storage quota (absent: unlimited).",
        "# TYPE beakerd_account_quota_bytes gauge",
    ]
    lines += [
        f"beakerd_account_quota_bytes{_labels(('account',), (name,))} {_number(limit)}"
        for name, (_, limit) in sorted(accounts.items())
        if limit is not None
    ]
    return lines


def _webhook_gauges(stats: dict[str, int]) -> list[str]:
    if not stats:
        return []
    lines = _gauge(
        "beakerd_webhook_events_pending",
        "Webhook events waiting in the outbox.",
        stats.get("pending", 0),
    )
    name = "beakerd_webhook_events_dropped_total"
    lines += [
        f"# HELP {name} Webhook events dropped undelivered, by reason: overflow (the outbox was"
        " full), failed (attempts ran out), unconfigured (the endpoint left the configuration).",
        f"# TYPE {name} counter",
    ]
    lines += [
        f"{name}{_labels(('reason',), (reason,))} {_number(stats.get('dropped_' + reason, 0))}"
        for reason in ("overflow", "failed", "unconfigured")
    ]
    return lines


async def metrics_endpoint(request: web.Request) -> web.Response:
    gauges = request.app.get(DATA_GAUGES)
    stored = None
    if gauges is not None:
        try:
            stored = await gauges.get()
        except Exception:  # the scrape still reports request counters
            log.exception("could not read stored-data gauges")
    # Other workers' files are read off the loop; our own counters are read on it.
    others = await asyncio.to_thread(_other_snapshots) if _worker else []
    text = render(stored, others)
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


def _data_gauges(database: web.AppKey[Database]) -> CleanupContext:
    async def open_gauges(app: web.Application) -> AsyncIterator[None]:
        app[DATA_GAUGES] = DataGauges(app[database], app.get(QUOTAS), app.get(OUTBOX))
        yield

    return open_gauges


async def _publish_snapshots(app: web.Application) -> AsyncIterator[None]:
    # Counts made in the parent before the fork (none, normally) are not this worker's.
    task = asyncio.create_task(_snapshot_loop()) if _worker else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(OSError):
            write_snapshot()


async def _snapshot_loop() -> None:
    while True:
        await asyncio.sleep(SNAPSHOT_SECONDS)
        try:
            await asyncio.to_thread(write_snapshot)
        except OSError as e:
            log.warning("could not write metrics snapshot: %s", e)


def add_routes(app: web.Application, database: web.AppKey[Database]) -> None:
    """Mount `/metrics` (no auth: bind to a private address or filter it at the proxy).

    Call after the cleanup context that opens the database under `database`.
    """
    app.router.add_get("/metrics", metrics_endpoint, allow_head=False)
    app.cleanup_ctx.append(_data_gauges(database))
    app.cleanup_ctx.append(_publish_snapshots)


# -- text format helpers -------------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    inner = ",".join(f'{n}="{_escape(str(v))}"' for n, v in zip(names, values, strict=True))
    return "{" + inner + "}"


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))
