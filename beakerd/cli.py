"""`beakerd`: the server's command line."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web
from pydantic import ValidationError

from beakerd.app import create_app
from beakerd.settings import Settings

log = logging.getLogger("beakerd")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beakerd", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the registry and Beaker API server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 5000)")
    serve.add_argument("--data-dir", help="where blobs and the database live")
    serve.add_argument("--log-level", help="debug, info, warning or error")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    given = {
        key: value
        for key, value in vars(args).items()
        if key != "command" and value is not None
    }
    return Settings(**given)


def _serve(settings: Settings) -> int:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = create_app(settings)
    log.info(
        "beakerd listening on http://%s, data in %s", settings.listen_address, settings.data_dir
    )
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ValidationError as e:
        for error in e.errors():
            field = ".".join(str(p) for p in error["loc"])
            print(f"beakerd: invalid {field}: {error['msg']}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(settings)
    return 2
