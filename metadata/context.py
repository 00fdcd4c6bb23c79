"""What the metadata handlers share, stored on the app under `METADATA`."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from metadata.contents import ContentsReader
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
    # What is inside images (config, history, layers), parsed once per digest.
    contents: ContentsReader = field(init=False)

    def __post_init__(self) -> None:
        self.contents = ContentsReader(self.registry)


METADATA = web.AppKey("metadata", MetadataContext)
