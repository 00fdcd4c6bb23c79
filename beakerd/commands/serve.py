"""`beakerd serve`: run the registry and the Beaker API."""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from beakerd.app import create_app
from beakerd.settings import Settings

log = logging.getLogger("beakerd")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the registry and Beaker API server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 5000)")
    serve.add_argument("--public-address", help="host:port clients use (default: host:port)")
    serve.set_defaults(run=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    app = create_app(settings)
    log.info(
        "beakerd listening on http://%s, data in %s", settings.listen_address, settings.data_dir
    )
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)
    return 0
