"""`beakerd gc [--dry-run]`: one garbage-collection pass over a data folder, online or not."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from beakerd.app import repository_owners
from beakerd.commands.datadir import data_exists, open_blobs, open_database
from beakerd.settings import Settings
from metadata.schema import MIGRATIONS as METADATA_MIGRATIONS
from storage.gc import GarbageCollector, GcBusy, GcPolicy, GcReport
from storage.generation import open_generation
from storage.pull_cache import PullCache

# How long to wait for a collection already running (the server's periodic pass) to end.
_BUSY_WAIT_SECONDS = 60.0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gc = commands.add_parser(
        "gc",
        help="remove unreferenced blobs, unheld manifests (if enabled), orphan repositories"
        " and expired uploads",
        description="Safe while the server runs: anything created or linked within the grace"
        " period is kept, so pushes in flight are not disturbed.",
    )
    gc.add_argument("--dry-run", action="store_true", help="report what would go; remove nothing")
    gc.add_argument("--grace-seconds", type=float, help="override BEAKERD_GC_GRACE_SECONDS")
    gc.add_argument(
        "--upload-expiry-seconds", type=float, help="override BEAKERD_UPLOAD_EXPIRY_SECONDS"
    )
    gc.add_argument(
        "--untagged-manifests",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="collect manifests no tag, index, subject or Beaker image holds"
        " (default: BEAKERD_GC_UNTAGGED_MANIFESTS)",
    )
    gc.add_argument("--json", action="store_true", help="print the report as JSON")
    gc.set_defaults(run=run)


def policy_from(settings: Settings, args: argparse.Namespace) -> GcPolicy:
    def pick(flag: float | None, default: float) -> float:
        return default if flag is None else max(flag, 0.0)

    untagged = args.untagged_manifests
    return GcPolicy(
        grace_seconds=pick(args.grace_seconds, settings.gc_grace_seconds),
        upload_expiry_seconds=pick(args.upload_expiry_seconds, settings.upload_expiry_seconds),
        untagged_manifests=settings.gc_untagged_manifests if untagged is None else untagged,
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    if not data_exists(settings, "gc"):
        return 2
    try:
        report = asyncio.run(_collect(settings, args))
    except GcBusy as e:
        print(f"beakerd gc: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report.as_dict()) if args.json else report.summary())
    return 0


async def _collect(settings: Settings, args: argparse.Namespace) -> GcReport:
    root = settings.data_dir
    async with (
        open_database(settings, [("metadata", METADATA_MIGRATIONS)]) as db,
        open_blobs(settings, db) as blobs,
    ):
        generation = await open_generation(db, root)
        try:
            if settings.upstreams and settings.pull_cache_expiry_seconds > 0 and not args.dry_run:
                # What the server's own pass does first: unused cache entries go, then their
                # blobs with this collection.
                await PullCache(db).expire(time.time() - settings.pull_cache_expiry_seconds)
            # A running server's caches drop what this pass removes when the counter moves.
            collector = GarbageCollector(
                db,
                blobs.root,
                policy_from(settings, args),
                generation.bump,
                repository_owners(db, settings),
                blobs.reclaimer,
            )
            return await _collect_when_free(collector, args.dry_run)
        finally:
            await generation.close()


async def _collect_when_free(collector: GarbageCollector, dry_run: bool) -> GcReport:
    """One pass, waiting a while if another collection (the server's own) is running."""
    deadline = time.monotonic() + _BUSY_WAIT_SECONDS
    while True:
        try:
            return await collector.collect(dry_run=dry_run)
        except GcBusy:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
