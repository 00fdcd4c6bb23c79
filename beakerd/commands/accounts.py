"""`beakerd account add|list|disable|promote|quota` and `beakerd token create|list|revoke`.

They work on the server's database directly, whether or not the server runs (SQLite in WAL mode
takes both; PostgreSQL is shared anyway); a revocation bumps the shared change counter, so every
running server process (every replica) drops the token's registry credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

from beakerd.commands.datadir import open_database
from beakerd.settings import Settings
from metadata.accounts import (
    DEFAULT_WORKSPACE,
    create_account,
    issue_token,
    list_accounts,
    list_tokens,
    revoke_all_tokens,
    revoke_token,
    set_admin,
    set_quota,
)
from metadata.errors import MetadataError
from metadata.ids import rfc3339
from metadata.owners import BeakerRepositoryOwners
from metadata.schema import MIGRATIONS as METADATA_MIGRATIONS
from metadata.workspaces import find_workspace
from storage.database import Database
from storage.generation import open_generation
from storage.quotas import Quotas
from storage.sizes import human_bytes, parse_size

Action = Callable[[Database, argparse.Namespace, Settings], Awaitable[int]]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    account = commands.add_parser("account", help="manage accounts")
    account_actions = account.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = account_actions.add_parser("add", help="create an account and print its first token")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="may read, push and delete anything")
    add.set_defaults(run=_runner(_add_account))
    listing = account_actions.add_parser("list", help="list accounts")
    listing.set_defaults(run=_runner(_list_accounts))
    disable = account_actions.add_parser(
        "disable", help="revoke all of an account's tokens at once (a new token enables it)"
    )
    disable.add_argument("name")
    disable.set_defaults(run=_runner(_disable_account))
    promote = account_actions.add_parser("promote", help="make an account an admin")
    promote.add_argument("name")
    promote.add_argument("--revoke", action="store_true", help="take admin rights away instead")
    promote.set_defaults(run=_runner(_promote_account))
    quota = account_actions.add_parser(
        "quota", help="show or set an account's storage quota (each blob counted once)"
    )
    quota.add_argument("name")
    quota.add_argument(
        "size", nargs="?", help="bytes or 500M, 10G...; `default` for the server's default"
    )
    quota.set_defaults(run=_runner(_quota))

    token = commands.add_parser("token", help="manage API tokens")
    token_actions = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = token_actions.add_parser("create", help="make a new API token for an account")
    create.add_argument("account")
    create.add_argument("--description", default="", help="what the token is for")
    create.set_defaults(run=_runner(_create_token))
    listing = token_actions.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("account", nargs="?", help="only this account's tokens")
    listing.set_defaults(run=_runner(_list_tokens))
    revoke = token_actions.add_parser("revoke", help="revoke a token by its ID, at once")
    revoke.add_argument("token_id")
    revoke.set_defaults(run=_runner(_revoke_token))


def _runner(action: Action) -> Callable[[Settings, argparse.Namespace], int]:
    def run(settings: Settings, args: argparse.Namespace) -> int:
        try:
            return asyncio.run(_with_database(settings, args, action))
        except MetadataError as e:
            print(f"beakerd: {e.message}", file=sys.stderr)
            return 1

    return run


async def _with_database(settings: Settings, args: argparse.Namespace, action: Action) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with open_database(settings, [("metadata", METADATA_MIGRATIONS)]) as db:
        return await action(db, args, settings)


async def _add_account(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    account, secret = await create_account(db, args.name, admin=args.admin)
    kind = "admin account" if account.admin else "account"
    print(f"created {kind} {account.name} ({account.id})")
    # The personal org (and its workspace) is only made when no org had the name already.
    workspace = await find_workspace(db, f"{account.name}/{DEFAULT_WORKSPACE}")
    if workspace is not None and workspace.author.id == account.id:
        print(f"created workspace {workspace.full_name} ({workspace.id})")
    print(f"API token: {secret}")
    print(f"log in with: docker login {settings.registry_address} -u {account.name} -p {secret}")
    return 0


async def _list_accounts(db: Database, args: argparse.Namespace, _: Settings) -> int:
    live = {info.account_name for info in await list_tokens(db) if info.revoked is None}
    for account in await list_accounts(db):
        role = "admin" if account.admin else "user"
        state = "active" if account.name in live else "disabled"
        print(f"{account.id}\t{account.name}\t{role}\t{state}\t{rfc3339(account.created)}")
    return 0


async def _disable_account(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    revoked = await revoke_all_tokens(db, args.name)
    # A running server drops registry credentials minted from those tokens at once.
    await _changed(db, settings)
    print(f"disabled {args.name}: revoked {revoked} token{'' if revoked == 1 else 's'}")
    return 0


async def _promote_account(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    account = await set_admin(db, args.name, not args.revoke)
    await _changed(db, settings)
    print(f"{account.name} is {'now an admin' if account.admin else 'no longer an admin'}")
    return 0


async def _quota(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    if args.size is not None:
        try:
            size = None if args.size == "default" else parse_size(args.size)
        except ValueError as e:
            print(f"beakerd: {e}", file=sys.stderr)
            return 2
        await set_quota(db, args.name, size)
    usage = await Quotas(db, BeakerRepositoryOwners(db, settings.quota_bytes)).usage(args.name)
    if usage is None:
        print(f"beakerd: no account {args.name}", file=sys.stderr)
        return 1
    limit = "unlimited" if usage.limit is None else human_bytes(usage.limit)
    print(f"{usage.account}: {human_bytes(usage.used)} used of {limit}")
    return 0


async def _create_token(db: Database, args: argparse.Namespace, _: Settings) -> int:
    info, secret = await issue_token(db, args.account, args.description)
    print(f"{info.id} {secret}")
    return 0


async def _list_tokens(db: Database, args: argparse.Namespace, _: Settings) -> int:
    for info in await list_tokens(db, args.account):
        state = f"revoked {rfc3339(info.revoked)}" if info.revoked else "live"
        created = rfc3339(info.created)
        print(f"{info.id}\t{info.account_name}\t{created}\t{state}\t{info.description}")
    return 0


async def _revoke_token(db: Database, args: argparse.Namespace, settings: Settings) -> int:
    if not await revoke_token(db, args.token_id):
        print(f"beakerd: no live token {args.token_id}", file=sys.stderr)
        return 1
    await _changed(db, settings)
    print(f"revoked {args.token_id}")
    return 0


async def _changed(db: Database, settings: Settings) -> None:
    """Tell running servers that cached credentials may be stale (storage/generation.py)."""
    generation = await open_generation(db, settings.data_dir)
    try:
        await generation.bump()
    finally:
        await generation.close()
