"""Scale benchmark: a data folder with 100,000 blobs, 10,000 repositories and 100,000 tags.

    python -m bench.scale_bench [--blobs N] [--repositories N] [--tags-per-repo N] [--keep]

Fills the folder through the storage layer (storage.database.Database, bulk inserts; blob
files written where storage.blobs.BlobStore puts them, tiny and real), then measures:
- server start-up: process start to `/v2/` answering (median of 3 starts);
- a `_catalog` page and a tags page: p50/p99 over many sequential requests on one connection;
- a manifest GET under load with wrk (when installed);
- one garbage-collection pass (storage/gc.py) over the full folder, with 10% of the blobs
  unreferenced and old enough to collect.
Prints a Markdown table and writes bench/scale_results.md. Everything runs on loopback in a
temporary folder (removed afterwards unless --keep); the server is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from beakerd.app import create_app
from beakerd.settings import Settings
from beakerd.workers import _prepare
from bench.report import Row, write_rows
from storage.blobs import BlobStore
from storage.digests import Digest
from storage.sqlite import SqliteDatabase

ACCOUNT = "bench"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
RESULTS = Path(__file__).with_name("scale_results.md")
# Rows older than any GC grace period.
OLD = time.time() - 7 * 86400
BATCH = 10_000


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- filling -------------------------------------------------------------------------------------


def _blob(i: int) -> tuple[bytes, str]:
    data = f"scale-bench blob {i}\n".encode()
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def _write_blob_files(store: BlobStore, count: int) -> list[tuple[str, int]]:
    rows = []
    for i in range(count):
        data, digest = _blob(i)
        path = store.path(Digest.parse(digest))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        rows.append((digest, len(data)))
    return rows


def _manifest(config: tuple[str, int], layer: tuple[str, int]) -> bytes:
    body = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config[0], "size": config[1]},
        "layers": [{"mediaType": LAYER_TYPE, "digest": layer[0], "size": layer[1]}],
    }
    return json.dumps(body, separators=(",", ":")).encode()


async def fill(root: Path, blobs: int, repositories: int, tags_per_repo: int) -> dict[str, float]:
    """Bulk-insert the data set; returns how long each part took."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    blob_rows = await asyncio.to_thread(_write_blob_files, BlobStore(root / "blobs"), blobs)
    timings["blob files"] = time.monotonic() - started

    # 90% of the blobs are referenced by the manifests (two each); the rest are garbage.
    referenced = int(blobs * 0.9)
    tags = repositories * tags_per_repo
    db = SqliteDatabase(root / "beakerd.db")
    await db.open()
    try:
        started = time.monotonic()
        async with db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                [(d, s, OLD) for d, s in blob_rows],
            )
            await conn.executemany(
                "INSERT INTO repositories (id, name, immutable, created_at) VALUES (?, ?, 0, ?)",
                [(r + 1, f"scale/repo-{r:05d}", OLD) for r in range(repositories)],
            )
        for first in range(0, tags, BATCH):
            contents, manifests, references, links, tag_rows = [], [], [], [], []
            for t in range(first, min(first + BATCH, tags)):
                repo_id = t // tags_per_repo + 1
                config = blob_rows[(2 * t) % referenced]
                layer = blob_rows[(2 * t + 1) % referenced]
                content = _manifest(config, layer)
                digest = "sha256:" + hashlib.sha256(content).hexdigest()
                contents.append((digest, content))
                manifests.append((repo_id, digest, MANIFEST_TYPE, len(content), OLD))
                for child in (config[0], layer[0]):
                    references.append((repo_id, digest, child))
                    links.append((repo_id, child, OLD))
                tag_rows.append((repo_id, f"tag-{t % tags_per_repo:03d}", digest, OLD))
            async with db.transaction() as conn:
                await conn.executemany(
                    "INSERT INTO manifest_contents (digest, content) VALUES (?, ?)"
                    " ON CONFLICT DO NOTHING",
                    contents,
                )
                await conn.executemany(
                    "INSERT INTO manifests (repository_id, digest, media_type, size, created_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    manifests,
                )
                await conn.executemany(
                    "INSERT INTO manifest_references (repository_id, manifest_digest,"
                    " child_digest, child_is_manifest) VALUES (?, ?, ?, 0) ON CONFLICT DO NOTHING",
                    references,
                )
                await conn.executemany(
                    "INSERT INTO repository_blobs (repository_id, digest, created_at)"
                    " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    links,
                )
                await conn.executemany(
                    "INSERT INTO tags (repository_id, name, digest, updated_at)"
                    " VALUES (?, ?, ?, ?)",
                    tag_rows,
                )
    finally:
        await db.close()
    await asyncio.to_thread(_settle, root / "beakerd.db")
    timings["database rows"] = time.monotonic() - started
    return timings


def _settle(path: Path) -> None:
    """Fold the WAL into the file and gather the planner's statistics, as a server that has run
    for a while would have them."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("ANALYZE")


# -- measuring -----------------------------------------------------------------------------------


class Beakerd:
    def __init__(self, root: Path, env: dict[str, str], log_path: Path) -> None:
        self.root = root
        self.env = env
        self.log_path = log_path
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, extra_args: list[str] | None = None) -> float:
        """Start the server; returns seconds from process start to `/v2/` answering."""
        cmd = [sys.executable, "-m", "beakerd", "serve", "--host", "127.0.0.1",
               "--port", str(self.port), "--data-dir", str(self.root),
               *(extra_args or [])]  # fmt: skip
        log = open(self.log_path, "ab")
        started = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"beakerd exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/v2/")
                conn.getresponse().read()
                conn.close()
                return time.monotonic() - started
            except OSError:
                time.sleep(0.005)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _latencies(port: int, auth: str, paths: list[str]) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    samples = []
    for path in paths:
        started = time.perf_counter()
        conn.request("GET", path, headers={"Authorization": auth})
        resp = conn.getresponse()
        resp.read()
        samples.append(time.perf_counter() - started)
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: {resp.status}")
    conn.close()
    return samples


def _bearer(port: int, auth: str, repository: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(
        "GET",
        f"/v2/token?service=beakerd&scope=repository:{repository}:pull",
        headers={"Authorization": auth},
    )
    token = json.loads(conn.getresponse().read())["token"]
    conn.close()
    return f"Bearer {token}"


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0


def _wrk(port: int, auth: str, path: str) -> float | None:
    if shutil.which("wrk") is None:
        return None
    out = subprocess.run(
        ["wrk", "-t2", "-c32", "-d5s", "-H", f"Authorization: {auth}",
         "-H", f"Accept: {MANIFEST_TYPE}", f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non_2xx:
        raise RuntimeError(f"wrk saw {non_2xx.group(1)} error responses on {path}")
    return float(found.group(1)) if found else None


async def _gc_pass(root: Path) -> tuple[float, str] | None:
    try:
        from storage.gc import GarbageCollector, GcPolicy
    except ImportError:
        return None
    db = SqliteDatabase(root / "beakerd.db")
    await db.open()
    try:
        collector = GarbageCollector(db, root, GcPolicy())
        started = time.monotonic()
        report = await collector.collect()
        return time.monotonic() - started, report.summary()
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blobs", type=int, default=100_000)
    parser.add_argument("--repositories", type=int, default=10_000)
    parser.add_argument("--tags-per-repo", type=int, default=10)
    parser.add_argument("--requests", type=int, default=1000, help="per latency measurement")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="beakerd-scale-"))
    root = work / "data"
    env = dict(os.environ)
    env["HOME"] = str(work / "home")
    env["BEAKER_CONFIG"] = str(work / "home" / ".beaker" / "config.yml")
    env.pop("XDG_DATA_HOME", None)
    env = {k: v for k, v in env.items() if not k.startswith("BEAKERD_")}
    os.environ["BEAKER_CONFIG"] = env["BEAKER_CONFIG"]  # the in-process bootstrap writes here
    rows: list[Row] = []
    server = Beakerd(root, env, work / "beakerd.log")
    try:
        print(f"filling {root} ...", file=sys.stderr)
        asyncio.run(_prepare(create_app(Settings(data_dir=root, bootstrap_account=ACCOUNT))))
        fill_times = asyncio.run(fill(root, args.blobs, args.repositories, args.tags_per_repo))
        token = yaml.safe_load(Path(env["BEAKER_CONFIG"]).read_text())["user_token"]
        auth = "Basic " + base64.b64encode(f"{ACCOUNT}:{token}".encode()).decode()
        total_tags = args.repositories * args.tags_per_repo
        print("fill: " + ", ".join(f"{k} {v:.1f}s" for k, v in fill_times.items()), file=sys.stderr)

        startups = []
        for _ in range(3):
            startups.append(server.start())
            server.stop()
        startup = statistics.median(startups)
        rows.append(Row("server start-up (process start to /v2/ answering, median of 3)",
                        f"{startup:.2f} s", "< 2 s",
                        "PASS" if startup < 2 else "FAIL"))  # fmt: skip

        server.start()
        rng = random.Random(7)
        names = [f"scale/repo-{rng.randrange(args.repositories):05d}" for _ in range(args.requests)]
        catalog = _latencies(server.port, auth, [f"/v2/_catalog?n=100&last={n}" for n in names])
        tags = _latencies(server.port, auth, [f"/v2/{n}/tags/list?n=100" for n in names])
        for label, samples in (("`_catalog` page (n=100)", catalog), ("tags page", tags)):
            p50, p99 = _p(samples, 0.5), _p(samples, 0.99)
            rows.append(Row(f"{label}, {len(samples)} sequential requests",
                            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms", "p99 < 20 ms",
                            "PASS" if p99 < 20 else "FAIL"))  # fmt: skip
        # Docker clients pull with a bearer token from /v2/token, not with Basic on each request.
        bearer = _bearer(server.port, auth, names[0])
        rate = _wrk(server.port, bearer, f"/v2/{names[0]}/manifests/tag-003")
        rows.append(Row("manifest GET under load (wrk -t2 -c32 -d5s, bearer token)",
                        f"{rate:,.0f} req/s" if rate else "wrk not installed",
                        "-", "-"))  # fmt: skip
        server.stop()

        gc = asyncio.run(_gc_pass(root))
        if gc is None:
            rows.append(Row("one GC pass", "storage/gc.py missing", "< 30 s", "MISSING"))
        else:
            seconds, summary = gc
            rows.append(Row(f"one GC pass ({summary.removeprefix('gc: ')})", f"{seconds:.2f} s",
                            "< 30 s", "PASS" if seconds < 30 else "FAIL"))  # fmt: skip
    finally:
        server.stop()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    header = (
        f"# beakerd at scale\n\nRun {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with"
        f" `python -m bench.scale_bench` on {os.cpu_count()} CPUs, {platform.platform()},"
        f" Python {platform.python_version()}.\nData: {args.blobs:,} blobs (tiny files),"
        f" {args.repositories:,} repositories, {total_tags:,} tags (one manifest each,"
        f" referencing 2 blobs; 10% of the blobs unreferenced and older than the GC grace"
        f" period), filled through the storage layer in"
        f" {sum(fill_times.values()):.0f} s.\n\n"
    )
    return write_rows(RESULTS, header, rows)


if __name__ == "__main__":
    raise SystemExit(main())
