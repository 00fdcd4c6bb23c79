"""`beakerd policy set|list|remove` and `beakerd retention [--dry-run]`.

Policies set here live in the database beside those of the configuration file, so every
replica applies them from its next write (immutable tags) or pass (retention) on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable

from beakerd.commands.datadir import data_exists, open_database
from beakerd.policy_config import PolicyConfig, outbox_of, policies_of
from beakerd.settings import Settings
from storage.generation import open_generation
from storage.policies import Policies, Policy
from storage.retention import Retention, RetentionReport


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = commands.add_parser(
        "policy", help="manage repository policies: immutable tags and retention"
    )
    actions = policy.add_subparsers(dest="action", required=True, metavar="ACTION")
    put = actions.add_parser("set", help="set (replace) the stored policy for a repository pattern")
    put.add_argument("repositories", help="`alice/*` (a namespace), `alice/app`, `*`")
    put.add_argument(
        "--immutable-tags",
        action="append",
        default=[],
        metavar="PATTERN",
        help="tags (e.g. `v*`) never moved nor deleted once they exist; repeatable",
    )
    put.add_argument("--tags", default="*", help="the tags retention looks at (default: all)")
    put.add_argument("--keep-newest", type=int, help="keep this many of the newest such tags")
    put.add_argument("--tags-older-than", help="remove such tags older than this (30d, 12h)")
    put.add_argument("--untagged-older-than", help="remove untagged manifests older than this")
    put.set_defaults(run=_set)
    listing = actions.add_parser("list", help="list configured and stored policies")
    listing.set_defaults(run=_list)
    remove = actions.add_parser("remove", help="remove a stored policy")
    remove.add_argument("repositories")
    remove.set_defaults(run=_remove)

    retention = commands.add_parser(
        "retention",
        help="apply the retention policies now",
        description="Committed Beaker images and immutable tags are never touched; blobs"
        " freed go at the next garbage collection.",
    )
    retention.add_argument(
        "--dry-run", action="store_true", help="list what would go; remove nothing"
    )
    retention.add_argument("--json", action="store_true", help="print the report as JSON")
    retention.set_defaults(run=_retention)


def _set(settings: Settings, args: argparse.Namespace) -> int:
    try:
        policy = PolicyConfig(
            repositories=args.repositories,
            immutable_tags=args.immutable_tags,
            tags=args.tags,
            keep_newest=args.keep_newest,
            tags_older_than=args.tags_older_than,
            untagged_older_than=args.untagged_older_than,
        ).policy()
    except ValueError as e:  # pydantic's ValidationError is one
        print(f"beakerd policy: {_first_error(e)}", file=sys.stderr)
        return 2

    async def store(policies: Policies) -> None:
        await policies.store(policy)

    asyncio.run(_with_policies(settings, store))
    print(f"policy for {policy.repositories}: {_describe(policy)}")
    return 0


def _list(settings: Settings, args: argparse.Namespace) -> int:
    async def show(policies: Policies) -> None:
        for policy in policies.configured:
            print(f"{policy.repositories}\tconfig\t{_describe(policy)}")
        for policy in await policies.stored():
            print(f"{policy.repositories}\tstored\t{_describe(policy)}")

    asyncio.run(_with_policies(settings, show))
    return 0


def _remove(settings: Settings, args: argparse.Namespace) -> int:
    removed = False

    async def remove(policies: Policies) -> None:
        nonlocal removed
        removed = await policies.remove(args.repositories)

    asyncio.run(_with_policies(settings, remove))
    if not removed:
        print(f"beakerd policy: no stored policy for {args.repositories}", file=sys.stderr)
        return 1
    print(f"removed the policy for {args.repositories}")
    return 0


def _retention(settings: Settings, args: argparse.Namespace) -> int:
    if not data_exists(settings, "retention"):
        return 2
    report = asyncio.run(_apply(settings, args.dry_run))
    if args.json:
        print(
            json.dumps(
                {
                    "dry_run": report.dry_run,
                    "tags": [vars_of(t) for t in report.tags],
                    "manifests": [vars_of(m) for m in report.manifests],
                }
            )
        )
        return 0
    for line in report.lines():
        print(line)
    print(report.summary())
    return 0


def vars_of(record: object) -> dict[str, object]:
    return {name: getattr(record, name) for name in getattr(record, "__slots__", ())}


async def _apply(settings: Settings, dry_run: bool) -> RetentionReport:
    async with open_database(settings) as db:
        generation = await open_generation(db, settings.data_dir)
        try:
            # A running server's caches drop what this pass removes when the counter moves.
            retention = Retention(
                db, policies_of(db, settings), outbox_of(db, settings), generation.bump
            )
            return await retention.apply(dry_run)
        finally:
            await generation.close()


async def _with_policies(settings: Settings, action: Callable[[Policies], Awaitable[None]]) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with open_database(settings) as db:
        await action(policies_of(db, settings))


def _describe(policy: Policy) -> str:
    parts = []
    if policy.immutable_tags:
        parts.append("immutable " + ",".join(policy.immutable_tags))
    if policy.keep_newest is not None:
        parts.append(f"keep newest {policy.keep_newest} of {policy.tags}")
    if policy.tags_older_than is not None:
        parts.append(f"remove {policy.tags} older than {policy.tags_older_than:g}s")
    if policy.untagged_older_than is not None:
        parts.append(f"remove untagged older than {policy.untagged_older_than:g}s")
    return "; ".join(parts) or "nothing"


def _first_error(error: ValueError) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}"
    return str(error)
