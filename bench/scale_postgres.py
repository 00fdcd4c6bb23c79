"""Scale benchmark on PostgreSQL: 1,000,000 blobs, 100,000 repositories, 1,000,000 tags.

    python -m bench.scale_postgres [--blobs N] [--repositories N] [--tags-per-repo N]
                                   [--doomed N] [--requests N]

Starts a PostgreSQL of its own (tests/backends/postgres.py, in /tmp, loopback only), migrates
it through beakerd, and loads the data with COPY (asyncpg's copy_records_to_table), the review
triggers off: the state of a registry whose garbage collector has kept up. Every tag names a
manifest of its own that references a config and a layer blob; `--doomed` of those images have
blobs nobody else references, and their blob files are written (the others need none: nothing
measured here reads them). Then it measures:
- server start-up: `beakerd serve --database ...` to `/v2/` answering (median of 3 starts);
- `_catalog?n=100&last=...` and `tags/list?n=100` pages: p50/p99 over many sequential requests;
- garbage collection: the doomed images' manifests are deleted as a client's DELETE would
  (their tags go with them), then one pass (storage/gc.py, with the orphan check) is timed,
  and one more pass with nothing to do.
Prints a Markdown table and writes bench/scale_postgres_results.md; PostgreSQL and the data
folder are removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import yaml

from beakerd.app import create_app
from beakerd.settings import Settings
from beakerd.workers import _prepare
from bench.report import Row, write_rows
from bench.scale_bench import CONFIG_TYPE, LAYER_TYPE, MANIFEST_TYPE, Beakerd, _latencies, _p
from metadata.owners import BeakerRepositoryOwners
from storage.blobs import BlobStore
from storage.database import open_database
from storage.digests import Digest
from storage.gc import GarbageCollector, GcPolicy
from storage.repositories import Repositories
from tests.backends.postgres import PostgresServer

ACCOUNT = "bench"
RESULTS = Path(__file__).with_name("scale_postgres_results.md")
OLD = time.time() - 7 * 86400  # older than any grace period
CHUNK = 50_000
# Triggers off while loading: the review triggers (as if every pass had kept up) and the
# foreign-key checks (the data is made consistent), which would cost a lookup per row.
LOADED = (
    "blobs", "repositories", "manifest_contents", "manifests", "manifest_references",
    "repository_blobs", "tags",
)  # fmt: skip


def _blob(i: int) -> tuple[str, int]:
    data = f"scale-bench blob {i}\n".encode()
    return "sha256:" + hashlib.sha256(data).hexdigest(), len(data)


def _manifest(t: int, config: tuple[str, int], layer: tuple[str, int]) -> tuple[str, bytes]:
    # The annotation makes each tag's manifest its own, though blobs repeat.
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config[0], "size": config[1]},
        "layers": [{"mediaType": LAYER_TYPE, "digest": layer[0], "size": layer[1]}],
        "annotations": {"bench.tag": str(t)},
    }
    content = json.dumps(body, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(content).hexdigest(), content


class DataSet:
    """Which blobs each tag's manifest references: a doomed image has two blobs of its own
    (the last 2 * doomed blobs); the others share the rest, two each, wrapping around."""

    def __init__(self, blobs: int, repositories: int, tags_per_repo: int, doomed: int) -> None:
        self.blobs, self.repositories, self.tags_per_repo = blobs, repositories, tags_per_repo
        self.tags = repositories * tags_per_repo
        self.shared = blobs - 2 * doomed
        stride = max(1, self.tags // doomed)
        self.doomed = {t: i for i, t in enumerate(range(0, stride * doomed, stride))}

    def repository(self, r: int) -> str:
        return f"{ACCOUNT}/repo-{r:06d}"

    def blob_indexes(self, t: int) -> tuple[int, int]:
        if t in self.doomed:
            i = self.shared + 2 * self.doomed[t]
            return i, i + 1
        return (2 * t) % self.shared, (2 * t + 1) % self.shared


async def load(url: str, data: DataSet, root: Path) -> dict[str, float]:
    timings: dict[str, float] = {}
    conn = await asyncpg.connect(url)
    try:
        for table in LOADED:
            await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
        started = time.monotonic()
        blobs = [_blob(i) for i in range(data.blobs)]
        for first in range(0, data.blobs, CHUNK):
            await conn.copy_records_to_table(
                "blobs",
                records=[(d, s, OLD) for d, s in blobs[first : first + CHUNK]],
                columns=["digest", "size", "created_at"],
            )
        await conn.copy_records_to_table(
            "repositories",
            records=[(r + 1, data.repository(r), 0, OLD) for r in range(data.repositories)],
            columns=["id", "name", "immutable", "created_at"],
        )
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('repositories', 'id'), max(id)) FROM repositories"
        )
        timings["blobs, repositories"] = time.monotonic() - started
        started = time.monotonic()
        for first in range(0, data.tags, CHUNK):
            await _load_tags(conn, data, blobs, range(first, min(first + CHUNK, data.tags)))
        timings["manifests, references, links, tags"] = time.monotonic() - started
        for table in LOADED:
            await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER ALL")
        started = time.monotonic()
        await conn.execute("ANALYZE")
        timings["analyze"] = time.monotonic() - started
    finally:
        await conn.close()
    store = BlobStore(root / "blobs")
    for t in data.doomed:
        for i in data.blob_indexes(t):
            body = f"scale-bench blob {i}\n".encode()
            path = store.path(Digest.of(body))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
    return timings


async def _load_tags(conn: Any, data: DataSet, blobs: list[tuple[str, int]], tags: range) -> None:
    contents, manifests, references, links, tag_rows = [], [], [], [], []
    for t in tags:
        repo_id = t // data.tags_per_repo + 1
        config, layer = (blobs[i] for i in data.blob_indexes(t))
        digest, content = _manifest(t, config, layer)
        contents.append((digest, content))
        manifests.append((repo_id, digest, MANIFEST_TYPE, len(content), OLD))
        for child in (config[0], layer[0]):
            references.append((repo_id, digest, child, 0))
            links.append((repo_id, child, OLD))
        tag_rows.append((repo_id, f"tag-{t % data.tags_per_repo:03d}", digest, OLD))
    await conn.copy_records_to_table(
        "manifest_contents", records=contents, columns=["digest", "content"]
    )
    await conn.copy_records_to_table(
        "manifests",
        records=manifests,
        columns=["repository_id", "digest", "media_type", "size", "created_at"],
    )
    await conn.copy_records_to_table(
        "manifest_references",
        records=references,
        columns=["repository_id", "manifest_digest", "child_digest", "child_is_manifest"],
    )
    # Two manifests of one repository may share a blob: one link row each.
    await conn.copy_records_to_table(
        "repository_blobs",
        records=list({(r, d): (r, d, at) for r, d, at in links}.values()),
        columns=["repository_id", "digest", "created_at"],
    )
    await conn.copy_records_to_table(
        "tags", records=tag_rows, columns=["repository_id", "name", "digest", "updated_at"]
    )


def _doomed_manifests(data: DataSet) -> Iterator[tuple[str, str]]:
    for t in data.doomed:
        config, layer = (_blob(i) for i in data.blob_indexes(t))
        yield data.repository(t // data.tags_per_repo), _manifest(t, config, layer)[0]


async def collect(url: str, root: Path, data: DataSet) -> list[tuple[str, float, str]]:
    """Delete the doomed images, then time one GC pass and one idle pass."""
    db = open_database(url, root)
    await db.open()
    try:
        repositories = Repositories(db)
        started = time.monotonic()
        for repository, digest in _doomed_manifests(data):
            assert await repositories.delete_manifest(repository, digest), (repository, digest)
        deleting = time.monotonic() - started
        collector = GarbageCollector(db, root, GcPolicy(), owners=BeakerRepositoryOwners(db))
        passes = [("delete the manifests (one transaction each)", deleting, "")]
        for label in ("one GC pass after the deletes", "the next GC pass (nothing to do)"):
            started = time.monotonic()
            report = await collector.collect()
            passes.append((label, time.monotonic() - started, report.summary()))
        return passes
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blobs", type=int, default=1_000_000)
    parser.add_argument("--repositories", type=int, default=100_000)
    parser.add_argument("--tags-per-repo", type=int, default=10)
    parser.add_argument("--doomed", type=int, default=1000, help="images deleted before GC")
    parser.add_argument("--requests", type=int, default=2000, help="per latency measurement")
    args = parser.parse_args(argv)
    data = DataSet(args.blobs, args.repositories, args.tags_per_repo, args.doomed)

    work = Path(tempfile.mkdtemp(prefix="beakerd-scale-pg-"))
    root = work / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEAKERD_")}
    env["HOME"] = str(work / "home")
    env["BEAKER_CONFIG"] = str(work / "home" / ".beaker" / "config.yml")
    env["BEAKERD_GC_INTERVAL_SECONDS"] = "0"  # the passes measured are the only ones
    env.pop("XDG_DATA_HOME", None)
    os.environ["BEAKER_CONFIG"] = env["BEAKER_CONFIG"]  # the in-process bootstrap writes here
    server = Beakerd(root, env, work / "beakerd.log")
    postgres = PostgresServer().start()
    rows: list[Row] = []
    try:
        url = asyncio.run(postgres.create_database())
        server_args = ["--database", url]
        print(f"loading {url.rsplit('@', 1)[1]} ...", file=sys.stderr)
        settings = Settings(data_dir=root, database=url, bootstrap_account=ACCOUNT)
        asyncio.run(_prepare(create_app(settings)))
        started = time.monotonic()
        timings = asyncio.run(load(url, data, root))
        loaded = time.monotonic() - started
        print("load: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()), file=sys.stderr)
        token = yaml.safe_load(Path(env["BEAKER_CONFIG"]).read_text())["user_token"]
        auth = "Basic " + base64.b64encode(f"{ACCOUNT}:{token}".encode()).decode()

        startups = []
        for _ in range(3):
            startups.append(server.start(server_args))
            server.stop()
        startup = statistics.median(startups)
        verdict = "PASS" if startup < 2 else "FAIL"
        rows.append(Row("server start-up (`beakerd serve` to /v2/ answering, median of 3)",
                        f"{startup:.2f} s", "< 2 s", verdict))  # fmt: skip
        server.start(server_args)
        rng = random.Random(7)
        names = [data.repository(rng.randrange(args.repositories)) for _ in range(args.requests)]
        catalog = _latencies(server.port, auth, [f"/v2/_catalog?n=100&last={n}" for n in names])
        tags = _latencies(server.port, auth, [f"/v2/{n}/tags/list?n=100" for n in names])
        server.stop()
        for label, samples in (("`_catalog?n=100&last=...`", catalog), ("`tags/list?n=100`", tags)):
            p50, p99 = _p(samples, 0.5), _p(samples, 0.99)
            rows.append(Row(f"{label} page, {len(samples)} sequential requests",
                            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms", "p99 < 20 ms",
                            "PASS" if p99 < 20 else "FAIL"))  # fmt: skip
        for label, seconds, summary in asyncio.run(collect(url, root, data)):
            detail = f" ({summary.removeprefix('gc: ')})" if summary else ""
            target = "seconds" if summary else "-"
            result = ("PASS" if seconds < 10 else "FAIL") if summary else "-"
            rows.append(Row(f"{label}{detail}", f"{seconds:.2f} s", target, result))
    finally:
        server.stop()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)

    header = (
        f"# beakerd at scale on PostgreSQL\n\nRun"
        f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with"
        f" `python -m bench.scale_postgres` on {os.cpu_count()} CPUs, {platform.platform()},"
        f" Python {platform.python_version()}, PostgreSQL 15 (fsync off).\nData:"
        f" {args.blobs:,} blobs, {args.repositories:,} repositories, {data.tags:,} tags (one"
        f" manifest each, referencing 2 blobs), loaded with COPY in {loaded:.0f} s; then"
        f" {len(data.doomed):,} images ({2 * len(data.doomed):,} blobs of their own) deleted.\n\n"
    )
    return write_rows(RESULTS, header, rows)


if __name__ == "__main__":
    raise SystemExit(main())
