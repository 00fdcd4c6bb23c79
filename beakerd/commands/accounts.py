"""`beakerd account add` and `beakerd token create|list|revoke`: accounts from the shell.

They work on the data folder directly, whether or not the server runs (SQLite in WAL mode takes
both); a revocation bumps the shared change counter, so a running server drops the token's
registry credentials at once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

from beakerd.commands.datadir import open_database
from beakerd.settings import Settings
from metadata.accounts import create_account, issue_token, list_tokens, revoke_token
from metadata.errors import MetadataError
from metadata.ids import rfc3339
from metadata.schema import MIGRATIONS as METADATA_MIGRATIONS
from storage.database import Database
from storage.generation import Generation

Action = Callable[[Database, argparse.Namespace, Settings], Awaitable[int]]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    account = commands.add_parser("account", help="manage accounts")
    account_actions = account.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = account_actions.add_parser("add", help="create an account and print its first token")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="may read, push and delete anything")
    add.set_defaults(run=_runner(_add_account))

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


async def _add_account(db: Database, args: argparse.Namespace, _: Settings) -> int:
    account, secret = await create_account(db, args.name, admin=args.admin)
    kind = "admin account" if account.admin else "account"
    print(f"created {kind} {account.name} ({account.id})")
    print(f"API token: {secret}")
    print(f"log in with: docker login HOST:PORT -u {account.name} -p {secret}")
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
    Generation(settings.data_dir / "generation").bump()
    print(f"revoked {args.token_id}")
    return 0
