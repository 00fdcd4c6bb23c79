"""`beaker`: the command line client of Beaker's image API (the seed's commands)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from beakerd.beaker_cli.commands import account, config, image
from beakerd.beaker_cli.context import Context
from beakerd.beaker_cli.errors import CliError
from beakerd.beaker_cli.parsing import ArgumentParser


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="beaker", description=__doc__)
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=ArgumentParser
    )
    image.add_parser(commands)
    account.add_parser(commands)
    config.add_parser(commands)
    return parser


Runner = Callable[[argparse.Namespace, Context], None]


def run(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Parse and run one command; return the exit code. Errors are printed, never raised."""
    try:
        args = build_parser().parse_args(argv)
        runner: Runner = args.run
        runner(args, Context(environ))
    except CliError as e:
        print(f"Error: {e.message}", file=sys.stderr, flush=True)
        return e.exit_code
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `beaker image list | head`: the reader left; nothing more to say.
        sys.stderr.close()
        return 1
    except Exception as e:
        if os.environ.get("BEAKER_DEBUG"):
            raise
        print(f"Error: unexpected {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(argv)
