"""The application factory: opens storage and mounts the registry on one aiohttp app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from beakerd import grpc_server, health, metrics, webhooks
from beakerd.disconnects import client_disconnects
from beakerd.policy_config import outbox_of, policies_of
from beakerd.settings import Settings
from metadata.authority import BeakerAuthority
from metadata.context import METADATA
from metadata.owners import BeakerRepositoryOwners
from metadata.routes import add_routes as add_metadata_routes
from metadata.startup import open_metadata
from metadata.web import add_routes as add_web_routes
from metadata.web.visits import WebSettings
from registry.auth import AUTH_POLICY, AUTHORITY, AuthPolicy, registry_auth
from registry.bodies import BODY_READ_TIMEOUT
from registry.context import REGISTRY, RegistryContext
from registry.middleware import registry_errors
from registry.proxy import PullThrough
from registry.routes import add_routes as add_registry_routes
from registry.tokens import TOKENS, TokenIssuer, server_key
from registry.upstreams import PullThroughOwners
from storage.blobstore.backend import BlobBackend, open_blob_store
from storage.database import Database, open_database
from storage.fill_claims import FillClaims, process_owner
from storage.gc import GarbageCollector, GcPolicy, run_periodically
from storage.generation import open_generation
from storage.orphans import RepositoryOwners
from storage.pull_cache import PullCache
from storage.quotas import Quotas
from storage.repositories import Repositories
from storage.retention import Retention
from storage.retention import run_periodically as retain_periodically
from storage.schema import MIGRATIONS as STORAGE_MIGRATIONS
from storage.scrub import Scrubber
from storage.scrub import run_periodically as scrub_periodically

DATABASE = web.AppKey("database", Database)
BLOB_BACKEND = web.AppKey("blob_backend", BlobBackend)
log = logging.getLogger("beakerd")
# An upstream that accepts no connection this fast is down; one silent this long mid-body too.
UPSTREAM_CONNECT_SECONDS = 10.0
UPSTREAM_READ_SECONDS = 60.0
# The `service` of registry tokens: their audience, echoed by clients from our challenges.
REGISTRY_SERVICE = "beakerd"


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[client_disconnects, registry_errors, registry_auth], client_max_size=4 << 20
    )
    app[SETTINGS] = settings
    app[BODY_READ_TIMEOUT] = settings.body_read_timeout_seconds
    app[AUTH_POLICY] = AuthPolicy(
        service=REGISTRY_SERVICE,
        anonymous_pull=settings.anonymous_pull,
        token_ttl=settings.token_ttl_seconds,
        public_base=(
            f"{settings.url_scheme}://{settings.public_address}"
            if settings.public_address
            else None
        ),
        pull_through=frozenset(u.name for u in settings.upstreams),
    )
    add_registry_routes(app)
    add_metadata_routes(app)
    add_web_routes(
        app,
        WebSettings(
            session_ttl_seconds=settings.web_session_ttl_seconds,
            secure_cookies=settings.tls_enabled,
        ),
    )
    app.cleanup_ctx.append(_storage)
    if settings.upstreams:
        # After _storage: the cache writes through its upload sessions.
        app.cleanup_ctx.append(_pull_through)
    # After _storage: it serves app[METADATA].
    app.cleanup_ctx.append(grpc_server.grpc_context(settings))
    # After _storage: the metrics gauges read the database it opens.
    health.add_routes(app, DATABASE, settings.data_dir, settings.blob_store, BLOB_BACKEND)
    metrics.add_routes(app, DATABASE)
    return app


async def _storage(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    root = settings.data_dir
    root.mkdir(parents=True, exist_ok=True)
    db = open_database(settings.database, root, settings.database_connect_timeout_seconds)
    await db.open()
    try:
        await db.migrate("storage", STORAGE_MIGRATIONS)
        key = await server_key(db, root / "keys" / "registry.pem")
        app[TOKENS] = TokenIssuer(key, REGISTRY_SERVICE)
        quotas = Quotas(db, BeakerRepositoryOwners(db, settings.quota_bytes))
        repositories = Repositories(
            db,
            policies=policies_of(db, settings),
            quotas=quotas,
            events=outbox_of(db, settings),
        )
        async with open_blob_store(
            settings.blob_location,
            db,
            repositories,
            lock_root=root,
            s3_endpoint=settings.s3_endpoint,
            redirect=settings.blob_redirect,
        ) as backend:
            async for _ in _serving(app, db, repositories, backend):
                yield
    finally:
        await db.close()


async def _serving(
    app: web.Application, db: Database, repositories: Repositories, backend: BlobBackend
) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    root = settings.data_dir
    generation = await open_generation(db, root)
    owners = repository_owners(db, settings)
    outbox = repositories.events
    app[DATABASE] = db
    app[BLOB_BACKEND] = backend
    if repositories.quotas is not None:
        app[metrics.QUOTAS] = repositories.quotas
    app[metrics.OUTBOX] = outbox
    app[REGISTRY] = RegistryContext(
        repositories=repositories,
        blobs=backend.reader,
        uploads=backend.uploads,
        generation=generation,
    )
    app[METADATA] = await open_metadata(
        db,
        app[REGISTRY],
        registry_address=settings.registry_address,
        bootstrap_account=settings.bootstrap_account,
        token_ttl_seconds=settings.token_ttl_seconds,
        scheme=settings.url_scheme,
        rpc_address=settings.rpc_address,
        ca_file=root / "tls" / "ca.crt" if settings.tls_auto else None,
    )
    if AUTHORITY not in app:  # tests may bring their own
        app[AUTHORITY] = BeakerAuthority(db)
    collector = GarbageCollector(
        db,
        backend.root,
        gc_policy(settings),
        generation.bump,
        owners,
        backend.reclaimer,
    )
    gc_task = (
        asyncio.create_task(
            run_periodically(collector, settings.gc_interval_seconds, metrics.record_gc)
        )
        if settings.gc_interval_seconds > 0
        else None
    )
    scrubber = Scrubber(db, backend.root, settings.scrub_rate_bytes_per_second)
    scrub_task = (
        asyncio.create_task(
            scrub_periodically(scrubber, settings.scrub_interval_seconds, metrics.record_scrub)
        )
        if backend.scrubbable
        and settings.scrub_rate_bytes_per_second > 0
        and settings.scrub_interval_seconds > 0
        else None
    )
    retention = Retention(db, repositories.policies, outbox, generation.bump)
    retention_task = (
        asyncio.create_task(
            retain_periodically(
                retention, settings.retention_interval_seconds, metrics.record_retention
            )
        )
        if settings.retention_interval_seconds > 0
        else None
    )
    try:
        async with webhooks.delivering(outbox, settings.webhook_timeout_seconds):
            yield
    finally:
        for task in (gc_task, scrub_task, retention_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        scrubber.close()
        await generation.close()


async def _pull_through(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    ctx = app[REGISTRY]
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=UPSTREAM_CONNECT_SECONDS, sock_read=UPSTREAM_READ_SECONDS
    )
    async with aiohttp.ClientSession(timeout=timeout, raise_for_status=False) as session:
        proxy = PullThrough(
            settings.upstreams,
            session,
            PullCache(app[DATABASE]),
            FillClaims(app[DATABASE], process_owner()),
            ctx.repositories,
            ctx.uploads,
            ctx.manifest,
        )
        ctx.proxy = proxy
        expiry = settings.pull_cache_expiry_seconds
        task = (
            asyncio.create_task(_age_out(proxy, ctx, expiry, settings.gc_interval_seconds))
            if expiry > 0 and settings.gc_interval_seconds > 0
            else None
        )
        yield
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        ctx.proxy = None


async def _age_out(
    proxy: PullThrough, ctx: RegistryContext, expiry: float, interval: float
) -> None:
    """Before each garbage collection, as often: unused cache entries go, then their blobs."""
    while True:
        await asyncio.sleep(interval)
        try:
            if await proxy.expire(expiry):
                await ctx.changed()
        except Exception:
            log.exception("ageing out the pull-through cache failed; retrying next interval")


def repository_owners(db: Database, settings: Settings) -> RepositoryOwners:
    """Who holds repositories, for GC and fsck: accounts, images and the configured upstreams."""
    owners: RepositoryOwners = BeakerRepositoryOwners(db, settings.quota_bytes)
    if settings.upstreams:
        owners = PullThroughOwners(owners, settings.upstreams)
    return owners


def gc_policy(settings: Settings) -> GcPolicy:
    return GcPolicy(
        grace_seconds=settings.gc_grace_seconds,
        upload_expiry_seconds=settings.upload_expiry_seconds,
        untagged_manifests=settings.gc_untagged_manifests,
    )


SETTINGS = web.AppKey("settings", Settings)
