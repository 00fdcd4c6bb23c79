"""`beakerd fsck [--repair]`: verify every blob's digest and that the database and disk agree."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict

from beakerd.commands.datadir import data_exists, open_blobs, open_database
from beakerd.settings import Settings
from metadata.owners import BeakerRepositoryOwners
from metadata.schema import MIGRATIONS as METADATA_MIGRATIONS
from storage.fsck import FsckReport
from storage.gc import GcBusy
from storage.sizes import human_bytes


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fsck = commands.add_parser(
        "fsck",
        help="verify blobs against their digests and the database against the disk",
        description="Exit status: 0 clean, 1 problems found (with --repair: problems left"
        " unrepaired), 2 no data. Safe while the server runs.",
    )
    fsck.add_argument(
        "--repair",
        action="store_true",
        help="fix what is safe: adopt or delete orphan files, delete rows of missing unreferenced"
        " blobs, move corrupt files to lost+found/, delete stale uploads and orphan repositories",
    )
    fsck.add_argument(
        "--grace-seconds",
        type=float,
        help="leave files younger than this alone (default BEAKERD_GC_GRACE_SECONDS)",
    )
    fsck.add_argument("--json", action="store_true", help="print the report as JSON")
    fsck.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if not data_exists(settings, "fsck"):
        return 2
    try:
        report = asyncio.run(_check(settings, args))
    except GcBusy as e:
        print(f"beakerd fsck: {e}; try again when it ends", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({**asdict(report), "clean": report.clean}))
    else:
        for finding in report.findings:
            print(finding.line())
        print(
            f"fsck: {report.blobs_checked} blobs verified ({human_bytes(report.bytes_checked)}),"
            f" {report.files_seen} files seen, {len(report.findings)} problems"
            + (f", {len(report.unrepaired)} left unrepaired" if args.repair else "")
        )
    problems = report.unrepaired if args.repair else report.findings
    return 1 if problems else 0


async def _check(settings: Settings, args: argparse.Namespace) -> FsckReport:
    grace = settings.gc_grace_seconds if args.grace_seconds is None else args.grace_seconds
    async with (
        open_database(settings, [("metadata", METADATA_MIGRATIONS)]) as db,
        open_blobs(settings, db) as blobs,
    ):
        fsck = blobs.fsck(
            db,
            repair=args.repair,
            grace_seconds=max(grace, 0.0),
            upload_expiry_seconds=settings.upload_expiry_seconds,
            owners=BeakerRepositoryOwners(db),
        )
        return await fsck.run()
