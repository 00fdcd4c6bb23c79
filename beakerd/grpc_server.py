"""The gRPC API for beaker-py 2.x beside the HTTP server: a cleanup context that starts a
`grpc.aio` server over app[METADATA] (the same data, accounts and tokens) and stops it.

- Always TLS, as beaker-py dials it: the `--tls-cert/--tls-key` pair when given, else the CA
  and server certificate of `--tls auto` under `<data_dir>/tls/`, made on first start even when
  HTTP is plain. beaker-py trusts that CA through `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`.
- Port: `grpc_port`, else the HTTP port + 1. A port given explicitly that cannot be bound stops
  the server; the derived one only turns gRPC off with a warning, so that a plain-HTTP user is
  not locked out by a port they never chose.
- Only where the app is served (beakerd/workers.py `serving()`): never in the supervisor, which
  forks afterwards (gRPC's threads do not survive a fork), nor in in-process tests. With
  `--workers N` every worker serves the one gRPC port with SO_REUSEPORT (`grpc.so_reuseport`),
  as the HTTP port does; with one process SO_REUSEPORT is off, so a taken port is an error.
- beaker-py (and grpcio) is the optional dependency `beakerd[grpc]`: without it, REST alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from beakerd import tls, workers
from beakerd.listener import ListenError
from beakerd.settings import Settings
from metadata.context import METADATA

log = logging.getLogger("beakerd.grpc")


def tls_files(settings: Settings) -> tls.TlsFiles:
    """The certificate gRPC serves: the operator's, else the auto CA's (made if absent)."""
    if settings.tls_cert is not None and settings.tls_key is not None:
        return tls.TlsFiles(settings.tls_cert, settings.tls_key)
    names = tls.server_names(settings.host, tls.host_of(settings.registry_address))
    return tls.auto_certificates_locked(settings.data_dir / "tls", names)


def client_hint(address: str, ca: Path | None) -> str:
    """How to point beaker-py 2.x at this server (printed at start)."""
    trust = f"; trust the CA with GRPC_DEFAULT_SSL_ROOTS_FILE_PATH={ca}" if ca is not None else ""
    return (
        f"gRPC (TLS) for beaker-py 2.x on {address}: rpc_address: {address} in the Beaker"
        f" config{trust}"
    )


def _bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def grpc_context(settings: Settings) -> CleanupContext:
    """The cleanup context serving gRPC for `settings`, for app.cleanup_ctx."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        async for _ in _serve(app, settings):
            yield

    return context


async def _serve(app: web.Application, settings: Settings) -> AsyncIterator[None]:
    if not settings.grpc_enabled or not workers.serving():
        yield
        return
    try:
        # Imported here: the dependency is optional, and costs 0.3 s to import.
        import grpc
        from beaker import beaker_pb2_grpc
        from grpc import aio

        from metadata.rpc.servicer import BeakerServicer
    except ImportError as e:
        log.warning("gRPC off (%s): install beakerd[grpc] to serve beaker-py 2.x", e)
        yield
        return
    if settings.workers > 1 and settings.rpc_port == 0:
        # Each worker would pick a port of its own.
        log.warning("gRPC off: with --workers, grpc_port must be a port number, not 0")
        yield
        return
    files = await asyncio.to_thread(tls_files, settings)
    key, chain = await asyncio.to_thread(lambda: (files.key.read_bytes(), files.cert.read_bytes()))
    server = aio.server(options=[("grpc.so_reuseport", int(settings.workers > 1))])
    servicer = BeakerServicer(app[METADATA])
    beaker_pb2_grpc.add_BeakerServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    address = _bind_address(settings.host, settings.rpc_port)
    try:
        port = server.add_secure_port(address, grpc.ssl_server_credentials([(key, chain)]))
    except RuntimeError as e:
        if settings.grpc_port is not None:
            reason = str(e).split(";")[0]
            raise ListenError(f"cannot serve gRPC on {address}: {reason}") from None
        log.warning("gRPC off: cannot listen on %s (%s); set grpc_port to choose one", address, e)
        yield
        return
    await server.start()
    host = tls.host_of(settings.registry_address)
    log.info("%s", client_hint(_bind_address(host, port), files.ca))
    try:
        yield
    finally:
        await server.stop(settings.shutdown_grace_seconds)
