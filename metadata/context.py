"""What the metadata handlers share, stored on the app under `METADATA`."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from registry.context import RegistryContext
from storage.database import Database


@dataclass
class MetadataContext:
    db: Database
    registry: RegistryContext
    # host:port clients use for the registry: the prefix of every image tag.
    registry_address: str
    # Lifetime of the registry credentials minted for an image.
    token_ttl_seconds: float
    # The web pages have no login: they show every image only when the server listens on
    # loopback alone (a laptop), else only images of public workspaces.
    pages_show_private: bool = True


METADATA = web.AppKey("metadata", MetadataContext)
