"""`beakerd`: the server's command line. Each subcommand lives in beakerd/commands/."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from beakerd.commands import accounts, fsck, gc, policies, serve
from beakerd.logging_setup import configure_logging
from beakerd.settings import ConfigError, Settings, load_settings
from storage.database import DatabaseUnavailable

# Options every subcommand takes, because they say where the data is and how to log.
_SETTINGS_FROM_ARGS = (
    "host",
    "port",
    "public_address",
    "data_dir",
    "database",
    "blob_store",
    "log_level",
    "log_format",
    "workers",
    "shutdown_grace_seconds",
    "access_log",
    "header_read_timeout_seconds",
    "keepalive_timeout_seconds",
    "max_connections",
)

Command = Callable[[Settings, argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """A parser that takes the shared options, as does every subparser made from it.

    argparse makes subparsers of their parent's class, so `beakerd account add NAME
    --data-dir D` parses like `beakerd --data-dir D account add NAME`, at any depth. The
    defaults are SUPPRESS: an option not given at one level leaves what another level set.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        shared = self.add_argument_group("shared options (before or after the command)")
        shared.add_argument(
            "--config",
            type=Path,
            default=argparse.SUPPRESS,
            help="settings file, YAML or TOML (default: $BEAKERD_CONFIG)",
        )
        shared.add_argument(
            "--data-dir", default=argparse.SUPPRESS, help="where blobs and the database live"
        )
        shared.add_argument(
            "--database",
            default=argparse.SUPPRESS,
            help="sqlite:///PATH or postgresql://USER:PASS@HOST:PORT/DB"
            " (default: beakerd.db in the data folder)",
        )
        shared.add_argument(
            "--blob-store",
            default=argparse.SUPPRESS,
            help="file:///PATH or s3://BUCKET[/PREFIX] (default: the data folder)",
        )
        shared.add_argument(
            "--log-level", default=argparse.SUPPRESS, help="debug, info, warning or error"
        )
        shared.add_argument(
            "--log-format",
            default=argparse.SUPPRESS,
            help="text (default) or json, one object per line",
        )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="beakerd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"beakerd {version('beakerd')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, gc, fsck, accounts, policies):
        module.register(commands)
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
    try:
        return run(settings, args)
    except DatabaseUnavailable as e:
        print(f"beakerd: {e}", file=sys.stderr)
        return 2
