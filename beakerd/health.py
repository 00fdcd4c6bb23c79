"""`/healthz` (the process is alive and serving) and `/readyz` (it can do its job right now).

Neither needs credentials: orchestrators and load balancers probe them. `/readyz` answers 503
with a JSON reason when the database does not answer a query, the data folder cannot be written,
or the server is shutting down (so a balancer stops sending new requests during the grace time).
Both answers name the database (without credentials) and the blob store this process uses, so
an operator can tell replicas that disagree apart.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from storage.blobstore.backend import BlobBackend
from storage.database import Database

# A check taking longer than this counts as failed: a stuck disk is not ready.
CHECK_TIMEOUT_SECONDS = 2.0

# Holds True once shutdown has begun (a list: the app is frozen, its contents are not).
DRAINING = web.AppKey("beakerd.draining", list[bool])

Handler = Callable[[web.Request], Awaitable[web.Response]]


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _probe_writable(folder: Path) -> None:
    """Create, write, fsync and remove a small file: what every upload needs to do."""
    probe = folder / f".readyz-{os.getpid()}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, b"ok")
        os.fsync(fd)
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)


def _answer(status: str, stores: dict[str, str], reason: str | None = None) -> web.Response:
    body = {"status": status, **stores}
    if reason is not None:
        body["reason"] = reason
    return web.json_response(body, status=200 if reason is None else 503)


def readyz_handler(
    database: web.AppKey[Database],
    data_dir: Path,
    blob_store: str,
    blobs: web.AppKey[BlobBackend] | None = None,
) -> Handler:
    async def readyz(request: web.Request) -> web.Response:
        stores = {"blob_store": blob_store}
        db = request.app.get(database)
        if db is not None:
            stores["database"] = db.describe()

        def _not_ready(reason: str) -> web.Response:
            return _answer("unavailable", stores, reason)

        if request.app[DRAINING]:
            return _not_ready("shutting down")
        if db is None:
            return _not_ready("database is not open")
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                await db.fetchone("SELECT 1")
        except TimeoutError:
            return _not_ready(f"database did not answer within {CHECK_TIMEOUT_SECONDS:g}s")
        except Exception as e:
            return _not_ready(f"database query failed: {e}")
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                await asyncio.to_thread(_probe_writable, data_dir)
        except TimeoutError:
            return _not_ready(f"data folder write took over {CHECK_TIMEOUT_SECONDS:g}s")
        except OSError as e:
            return _not_ready(f"data folder {data_dir} is not writable: {e.strerror or e}")
        backend = request.app.get(blobs) if blobs is not None else None
        if backend is not None:
            try:
                async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                    await backend.reader.ping()
            except TimeoutError:
                return _not_ready(f"blob store did not answer within {CHECK_TIMEOUT_SECONDS:g}s")
            except Exception as e:  # any failure of the store's client is a reason, not a 500
                return _not_ready(f"blob store failed: {e}")
        return _answer("ok", stores)

    return readyz


async def _on_shutdown(app: web.Application) -> None:
    app[DRAINING].append(True)


def add_routes(
    app: web.Application,
    database: web.AppKey[Database],
    data_dir: Path,
    blob_store: str | None = None,
    blobs: web.AppKey[BlobBackend] | None = None,
) -> None:
    """`blob_store`: the store's URL as the settings name it (never with credentials);
    `blobs`: where the app keeps the open store, asked whether it answers."""
    app[DRAINING] = []
    app.router.add_get("/healthz", healthz)
    app.router.add_get(
        "/readyz", readyz_handler(database, data_dir, blob_store or f"file://{data_dir}", blobs)
    )
    app.on_shutdown.append(_on_shutdown)
