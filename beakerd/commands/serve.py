"""`beakerd serve`: run the registry and the Beaker API."""

from __future__ import annotations

import argparse
import logging
import ssl
import sys
from pathlib import Path

from aiohttp import web

from beakerd import tls, workers
from beakerd.app import create_app
from beakerd.settings import Settings

log = logging.getLogger("beakerd")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the registry and Beaker API server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 5000)")
    serve.add_argument("--public-address", help="host:port clients use (default: host:port)")
    serve.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--tls-key", type=Path, help="the private key of --tls-cert (PEM)")
    serve.add_argument(
        "--tls",
        choices=("auto",),
        help="auto: make (once) a CA and a server certificate under DATA_DIR/tls and serve HTTPS",
    )
    serve.add_argument(
        "--body-read-timeout",
        type=float,
        help="seconds a request body may stall before it is abandoned (default 60)",
    )
    serve.add_argument(
        "--workers", type=int, help="processes serving the port over one data folder (default 1)"
    )
    serve.add_argument(
        "--shutdown-grace",
        type=float,
        dest="shutdown_grace_seconds",
        help="seconds requests in flight may take to finish after SIGTERM (default 10)",
    )
    serve.add_argument(
        "--header-read-timeout",
        type=float,
        dest="header_read_timeout_seconds",
        help="seconds a request line and headers may take to arrive (default 20)",
    )
    serve.add_argument(
        "--keepalive-timeout",
        type=float,
        dest="keepalive_timeout_seconds",
        help="seconds an idle keep-alive connection stays open (default 75)",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        help="connections per process at once, lowered to fit the fd limit (default 4096)",
    )
    serve.add_argument(
        "--no-access-log",
        action="store_false",
        dest="access_log",
        default=None,
        help="do not log a line per request (metrics are kept)",
    )
    serve.set_defaults(run=run)


def _apply_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    update: dict[str, object] = {}
    if getattr(args, "tls_cert", None) is not None:
        update["tls_cert"] = args.tls_cert
    if getattr(args, "tls_key", None) is not None:
        update["tls_key"] = args.tls_key
    if getattr(args, "tls", None) == "auto":
        update["tls_auto"] = True
    if getattr(args, "body_read_timeout", None) is not None:
        update["body_read_timeout_seconds"] = args.body_read_timeout
    return settings.model_copy(update=update)


def _flag_problem(settings: Settings) -> str | None:
    if not 0 < settings.body_read_timeout_seconds <= 3600:
        return "--body-read-timeout must be more than 0 and at most 3600 seconds"
    if settings.tls_auto and (settings.tls_cert or settings.tls_key):
        return "--tls auto makes its own certificate: drop --tls-cert/--tls-key"
    if (settings.tls_cert is None) != (settings.tls_key is None):
        return "--tls-cert and --tls-key go together"
    for path in (settings.tls_cert, settings.tls_key):
        if path is not None and not path.is_file():
            return f"no such file: {path}"
    return None


def ssl_context_for(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context (making certificates for `--tls auto`), or None for HTTP."""
    if settings.tls_auto:
        names = tls.server_names(settings.host, tls.host_of(settings.registry_address))
        files = tls.auto_certificates(settings.data_dir / "tls", names)
        hint = tls.client_hint(files, settings.registry_address)
        log.info("%s", hint)
        print(hint, file=sys.stderr, flush=True)
    elif settings.tls_cert is not None and settings.tls_key is not None:
        files = tls.TlsFiles(settings.tls_cert, settings.tls_key)
    else:
        return None
    return tls.server_context(files)


def run(settings: Settings, args: argparse.Namespace) -> int:
    settings = _apply_flags(settings, args)
    problem = _flag_problem(settings)
    if problem is not None:
        print(f"beakerd: {problem}", file=sys.stderr)
        return 2
    try:
        ssl_context = ssl_context_for(settings)
    except (OSError, ValueError, ssl.SSLError) as e:
        print(f"beakerd: cannot set up TLS: {e}", file=sys.stderr)
        return 2

    def make_app() -> web.Application:
        # Called once per worker process (and once more to prepare the data folder first).
        return create_app(settings)

    return workers.serve(settings, make_app, ssl_context)
