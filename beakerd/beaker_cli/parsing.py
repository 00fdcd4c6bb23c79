"""argparse, reporting a usage mistake as one `Error:` line (exit 2) like every other failure."""

from __future__ import annotations

import argparse
from typing import NoReturn, TypeAlias

from beakerd.beaker_cli.errors import CliError

USAGE_ERROR = 2


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')", USAGE_ERROR)


# What a command group's `add_parser(commands)` receives.
Commands: TypeAlias = "argparse._SubParsersAction[ArgumentParser]"
