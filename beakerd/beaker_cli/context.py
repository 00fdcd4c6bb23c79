"""What a command needs, made on first use: the configuration, the API client, the Docker engine.

Lazy so that `beaker config set` works without an address, and `beaker image inspect` without a
Docker engine.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from functools import cached_property

from beakerd.beaker_cli import config as config_module
from beakerd.beaker_cli import tls_trust
from beakerd.beaker_cli.api import BeakerApi
from beakerd.beaker_cli.config import Config
from beakerd.beaker_cli.docker_engine import DockerEngine
from beakerd.beaker_cli.models import ImageRepository
from beakerd.beaker_cli.output import Output
from beakerd.beaker_cli.registry_client import Endpoint, RegistryClient


class Context:
    def __init__(
        self, environ: Mapping[str, str] | None = None, output: Output | None = None
    ) -> None:
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.out = output or Output()

    @cached_property
    def config(self) -> Config:
        return config_module.load(self.environ)

    @cached_property
    def ssl_context(self) -> ssl.SSLContext:
        return tls_trust.ssl_context(self.config.ca_file)

    @cached_property
    def api(self) -> BeakerApi:
        base = self.config.api_base
        context = self.ssl_context if base.startswith("https://") else None
        return BeakerApi(base, self.config.token, ssl_context=context)

    @cached_property
    def engine(self) -> DockerEngine:
        return DockerEngine.connect()

    def registry(self, repo: ImageRepository) -> tuple[RegistryClient, str]:
        """A /v2 client with an image's credentials, and the image's repository in it.

        The registry is served where the API is, so it is reached the same way (HTTP or TLS).
        """
        address, _, repository = repo.image_tag.partition("/")
        scheme = "https" if self.config.api_base.startswith("https://") else "http"
        context = self.ssl_context if scheme == "https" else None
        return RegistryClient(Endpoint(scheme, address), repo.auth, context), repository
