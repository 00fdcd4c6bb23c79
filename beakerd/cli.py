"""`beakerd`: the server's command line. Each subcommand lives in beakerd/commands/."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

from beakerd.commands import accounts, fsck, gc, serve
from beakerd.logging_setup import configure_logging
from beakerd.settings import ConfigError, Settings, load_settings

# Options every subcommand takes, because they say where the data is and how to log.
_SETTINGS_FROM_ARGS = (
    "host",
    "port",
    "public_address",
    "data_dir",
    "log_level",
    "log_format",
    "workers",
    "shutdown_grace_seconds",
    "access_log",
)

Command = Callable[[Settings, argparse.Namespace], int]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beakerd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"beakerd {version('beakerd')}")
    parser.add_argument("--data-dir", help="where blobs and the database live")
    parser.add_argument("--log-level", help="debug, info, warning or error")
    parser.add_argument("--log-format", help="text (default) or json, one object per line")
    parser.add_argument(
        "--config", type=Path, help="settings file, YAML or TOML (default: $BEAKERD_CONFIG)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, gc, fsck, accounts):
        module.register(commands)
    # Accept the shared options after the subcommand too: `beakerd serve --data-dir D`.
    for sub in commands.choices.values():
        sub.add_argument("--data-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        sub.add_argument("--log-level", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        sub.add_argument("--log-format", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        sub.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    """Flags given on the command line over BEAKERD_* over the config file over defaults."""
    given = {
        key: getattr(args, key)
        for key in _SETTINGS_FROM_ARGS
        if getattr(args, key, None) is not None
    }
    return load_settings(given, getattr(args, "config", None))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ConfigError as e:
        print(f"beakerd: {e}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    run: Command = args.run
    return run(settings, args)
