"""`beaker config set KEY VALUE` and `beaker config list`."""

from __future__ import annotations

import argparse

from beakerd.beaker_cli import config as config_module
from beakerd.beaker_cli.config import CONFIG_KEYS, ENV_OVERRIDES, SENSITIVE_KEYS
from beakerd.beaker_cli.context import Context
from beakerd.beaker_cli.output import say
from beakerd.beaker_cli.parsing import Commands


def add_parser(commands: Commands) -> None:
    config = commands.add_parser("config", help="the client configuration")
    verbs = config.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    set_ = verbs.add_parser("set", help="set one key in the config file ('' unsets it)")
    set_.add_argument("key", metavar="KEY", choices=CONFIG_KEYS, help=", ".join(CONFIG_KEYS))
    set_.add_argument("value", metavar="VALUE")
    set_.set_defaults(run=set_command)

    listing = verbs.add_parser("list", help="show the effective configuration")
    listing.add_argument(
        "--show-sensitive", action="store_true", help="show the token instead of a redacted form"
    )
    listing.set_defaults(run=list_command)


def set_command(args: argparse.Namespace, ctx: Context) -> None:
    config_module.set_value(config_module.config_path(ctx.environ), args.key, args.value)


def list_command(args: argparse.Namespace, ctx: Context) -> None:
    path = config_module.config_path(ctx.environ)
    say(f"# {path}")
    config = ctx.config
    environ = ctx.environ
    for key in CONFIG_KEYS:
        value = config.get(key)
        shown = "(unset)" if value is None else value
        if value is not None and key in SENSITIVE_KEYS and not args.show_sensitive:
            shown = config_module.redact(value)
        var = ENV_OVERRIDES.get(key)
        source = ""
        if var is not None and environ.get(var):
            source = f"  (from {var})"
        say(f"{key} = {shown}{source}")
