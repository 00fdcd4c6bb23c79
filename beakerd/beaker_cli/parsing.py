"""argparse, reporting a usage mistake as one `Error:` line (exit 2) like every other failure."""

from __future__ import annotations

import argparse
from typing import NoReturn, TypeAlias

from beakerd.beaker_cli.errors import CliError

USAGE_ERROR = 2
FORMATS = ("table", "text", "json")


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')", USAGE_ERROR)


# What a command group's `add_parser(commands)` receives.
Commands: TypeAlias = "argparse._SubParsersAction[ArgumentParser]"


def add_output_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """`--format` and `-q/--quiet`, before the command or after it (`beaker image list -q`).

    Only the top level sets defaults: a command's copy leaves the value alone unless given.
    """
    default_format = None if top else argparse.SUPPRESS
    default_quiet = False if top else argparse.SUPPRESS
    parser.add_argument(
        "--format", choices=FORMATS, default=default_format,
        help="json: machine-readable output (table and text: the human form)",
    )  # fmt: skip
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default_quiet,
        help="print only IDs (or the name a command made), no progress",
    )  # fmt: skip


def leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser under `parser` that runs a command (has no subcommands of its own)."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += leaf_parsers(sub) or [sub]
    return found
