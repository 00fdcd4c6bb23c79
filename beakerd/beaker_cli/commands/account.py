"""`beaker account whoami` and `beaker account token create|list|revoke` (one's own tokens)."""

from __future__ import annotations

import argparse

from beakerd.beaker_cli.context import Context
from beakerd.beaker_cli.errors import CliError
from beakerd.beaker_cli.output import (
    TOKEN_HEADERS,
    account_json,
    say,
    table,
    to_json,
    token_rows,
    warn,
)
from beakerd.beaker_cli.parsing import Commands
from storage.sizes import human_bytes


def add_parser(commands: Commands) -> None:
    account = commands.add_parser("account", help="your Beaker account")
    verbs = account.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    whoami = verbs.add_parser("whoami", help="show the account the configured token belongs to")
    whoami.set_defaults(run=whoami_command)

    token = verbs.add_parser("token", help="manage your API tokens")
    token_verbs = token.add_subparsers(dest="token_verb", required=True, metavar="COMMAND")

    create = token_verbs.add_parser("create", help="make a new API token (shown once)")
    create.add_argument("--description", "-d", help="a label to tell the token apart")
    create.set_defaults(run=create_token)

    listing = token_verbs.add_parser("list", help="list your API tokens (never their secrets)")
    listing.set_defaults(run=list_tokens)

    revoke = token_verbs.add_parser("revoke", help="revoke one of your API tokens")
    revoke.add_argument("token_id", metavar="TOKEN_ID")
    revoke.set_defaults(run=revoke_token)


def whoami_command(args: argparse.Namespace, ctx: Context) -> None:
    me = ctx.api.whoami()
    storage = ctx.api.storage()
    headers: tuple[str, ...] = ("ID", "NAME", "DISPLAY NAME")
    row = [me.id, me.name, me.display_name or ""]
    data = account_json(me) or {}
    if storage is not None:
        quota = storage.quota_bytes
        headers += ("STORAGE", "QUOTA")
        row += [
            human_bytes(storage.used_bytes),
            "unlimited" if quota is None else human_bytes(quota),
        ]
        data |= {"storage_bytes": storage.used_bytes, "quota_bytes": quota}
    ctx.out.result(data=data, text=table(headers, [row]), ids=[me.name])


def create_token(args: argparse.Namespace, ctx: Context) -> None:
    token = ctx.api.create_token(args.description)
    if not token.token:
        raise CliError("the server created a token but did not send its secret")
    if ctx.out.json:
        say(to_json(token.model_dump(exclude_none=True)))
        return
    # The secret alone on stdout, so that `TOKEN=$(beaker account token create)` works.
    say(token.token)
    if not ctx.out.quiet:
        warn(f"Created token {token.id}; store it now: it is not shown again.")


def list_tokens(args: argparse.Namespace, ctx: Context) -> None:
    tokens = ctx.api.list_tokens()
    ctx.out.result(
        data=[t.model_dump(exclude_none=True, exclude={"token"}) for t in tokens],
        text=table(TOKEN_HEADERS, token_rows(tokens)),
        ids=[t.id for t in tokens],
    )


def revoke_token(args: argparse.Namespace, ctx: Context) -> None:
    ctx.api.revoke_token(args.token_id)
    ctx.out.result(
        data={"id": args.token_id, "revoked": True},
        text=f"Revoked token {args.token_id}.",
        ids=[args.token_id],
    )
