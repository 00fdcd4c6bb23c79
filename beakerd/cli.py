"""`beakerd`: the server's command line. Each subcommand lives in beakerd/commands/."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from pydantic import ValidationError

from beakerd.commands import serve
from beakerd.settings import Settings

# Options every subcommand takes, because they say where the data is and how to log.
_SETTINGS_FROM_ARGS = ("host", "port", "public_address", "data_dir", "log_level")

Command = Callable[[Settings, argparse.Namespace], int]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beakerd", description=__doc__)
    parser.add_argument("--data-dir", help="where blobs and the database live")
    parser.add_argument("--log-level", help="debug, info, warning or error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve,):
        module.register(commands)
    # Accept the shared options after the subcommand too: `beakerd serve --data-dir D`.
    for sub in commands.choices.values():
        sub.add_argument("--data-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        sub.add_argument("--log-level", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    given = {
        key: getattr(args, key)
        for key in _SETTINGS_FROM_ARGS
        if getattr(args, key, None) is not None
    }
    return Settings(**given)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ValidationError as e:
        for error in e.errors():
            field = ".".join(str(p) for p in error["loc"]) or "settings"
            print(f"beakerd: invalid {field}: {error['msg']}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    run: Command = args.run
    return run(settings, args)
