"""`beaker`: the command line client of Beaker's image and workspace API (the seed's commands
and more), with `--format json` and `-q/--quiet` for scripts."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version

from beakerd.beaker_cli.commands import account, config, image, workspace
from beakerd.beaker_cli.context import Context
from beakerd.beaker_cli.errors import CliError
from beakerd.beaker_cli.output import Output
from beakerd.beaker_cli.parsing import (
    USAGE_ERROR,
    ArgumentParser,
    add_output_options,
    leaf_parsers,
)


def package_version() -> str:
    try:
        return version("beakerd")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="beaker", description=__doc__)
    parser.add_argument("--version", action="version", version=f"beaker {package_version()}")
    add_output_options(parser, top=True)
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=ArgumentParser
    )
    image.add_parser(commands)
    workspace.add_parser(commands)
    account.add_parser(commands)
    config.add_parser(commands)
    for leaf in leaf_parsers(parser):
        add_output_options(leaf, top=False)
    return parser


def output_of(args: argparse.Namespace) -> Output:
    if args.quiet and args.format == "json":
        raise CliError("--quiet and --format json cannot be used together", USAGE_ERROR)
    return Output(args.format, args.quiet)


Runner = Callable[[argparse.Namespace, Context], None]


def run(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Parse and run one command; return the exit code. Errors are printed, never raised."""
    try:
        args = build_parser().parse_args(argv)
        runner: Runner = args.run
        runner(args, Context(environ, output_of(args)))
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
