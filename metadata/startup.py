"""Bring the metadata store up on an open database: migrations, then first-start bootstrap."""

from __future__ import annotations

from pathlib import Path

from metadata.bootstrap import bootstrap
from metadata.context import MetadataContext
from metadata.schema import MIGRATIONS
from registry.context import RegistryContext
from storage.database import Database


async def open_metadata(
    db: Database,
    registry: RegistryContext,
    *,
    registry_address: str,
    bootstrap_account: str | None,
    token_ttl_seconds: float,
    scheme: str = "http",
    rpc_address: str | None = None,
    ca_file: Path | None = None,
) -> MetadataContext:
    await db.migrate("metadata", MIGRATIONS)
    await bootstrap(
        db,
        registry_address,
        bootstrap_account,
        scheme=scheme,
        rpc_address=rpc_address,
        ca_file=ca_file,
    )
    return MetadataContext(db, registry, registry_address, token_ttl_seconds)
