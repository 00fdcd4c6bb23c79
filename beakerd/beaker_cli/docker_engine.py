"""The local Docker engine, through the docker SDK (`docker.from_env()`, so DOCKER_HOST)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import docker
import docker.errors

from beakerd.beaker_cli.errors import CliError
from beakerd.beaker_cli.models import RepositoryAuth

# Receives each JSON message of a push or pull stream that is not an error.
Observer = Callable[[Mapping[str, Any]], None]


def auth_config(auth: RepositoryAuth) -> dict[str, str]:
    """The engine's X-Registry-Auth fields for an ImageRepo's credentials."""
    return {
        "username": auth.user,
        "password": auth.password,
        "serveraddress": auth.server_address,
    }


def progress_line(message: Mapping[str, Any]) -> str | None:
    """The line `docker` prints for one JSON message of a push/pull stream, off a terminal.

    Like the docker CLI writing to a pipe, progress-bar updates ("Pushing [==>  ]") are dropped,
    and so are aux messages (they repeat the digest line); `<id>: <status>` otherwise.
    Error messages are not lines: `raise_for_error` handles them.
    """
    if "error" in message or "errorDetail" in message:
        return None
    status = message.get("status")
    if not status:
        return None
    if message.get("progress") or message.get("progressDetail"):
        return None
    ident = message.get("id")
    return f"{ident}: {status}" if ident else str(status)


def stream_error(message: Mapping[str, Any]) -> str | None:
    detail = message.get("errorDetail")
    if isinstance(detail, Mapping) and detail.get("message"):
        return str(detail["message"])
    if message.get("error"):
        return str(message["error"])
    return None


def follow(stream: Iterable[Mapping[str, Any]], observe: Observer) -> None:
    """Hand each message of a push/pull stream on; stop with the engine's error if it has one."""
    for message in stream:
        error = stream_error(message)
        if error is not None:
            raise CliError(error)
        observe(message)


class DockerEngine:
    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client

    @classmethod
    def connect(cls) -> DockerEngine:
        where = os.environ.get("DOCKER_HOST") or "the default socket"
        try:
            client = docker.from_env(version="auto")
            client.ping()
        except docker.errors.DockerException as e:
            raise CliError(f"cannot reach the Docker engine at {where}: {_short(e)}") from None
        except OSError as e:
            raise CliError(f"cannot reach the Docker engine at {where}: {e}") from None
        return cls(client)

    def image_id(self, reference: str) -> str:
        try:
            return str(self.client.images.get(reference).id)
        except docker.errors.ImageNotFound:
            raise CliError(f"no Docker image {reference!r} in the local engine") from None
        except docker.errors.APIError as e:
            raise CliError(f"Docker engine: {_short(e)}") from None

    def repo_tags(self, image_id: str) -> list[str]:
        try:
            return [str(t) for t in self.client.images.get(image_id).tags]
        except docker.errors.DockerException:
            return []

    def has_reference(self, reference: str) -> bool:
        """Whether the engine already holds `repo:tag` (a name the user may be relying on)."""
        try:
            self.client.images.get(reference)
        except docker.errors.DockerException:
            return False
        return True

    def tag(self, image: str, repository: str, tag: str = "latest") -> None:
        try:
            self.client.api.tag(image, repository, tag)
        except docker.errors.APIError as e:
            raise CliError(f"cannot tag {image} as {repository}:{tag}: {_short(e)}") from None

    def untag(self, reference: str) -> None:
        """Drop one tag, never the image data: only untag when another name still holds it."""
        try:
            image_id = self.client.images.get(reference).id
            if len(self.repo_tags(image_id)) > 1:
                self.client.api.remove_image(reference, noprune=True)
        except docker.errors.DockerException:
            pass  # tidying up only: the image itself is where the user wants it

    def push(self, repository: str, auth: RepositoryAuth, observe: Observer) -> None:
        try:
            stream = self.client.api.push(
                repository, tag="latest", stream=True, decode=True, auth_config=auth_config(auth)
            )
            follow(_messages(stream), observe)
        except docker.errors.DockerException as e:
            raise CliError(f"push failed: {_short(e)}") from None

    def pull(self, repository: str, auth: RepositoryAuth, observe: Observer) -> None:
        try:
            stream = self.client.api.pull(
                repository, tag="latest", stream=True, decode=True, auth_config=auth_config(auth)
            )
            follow(_messages(stream), observe)
        except docker.errors.DockerException as e:
            raise CliError(f"pull failed: {_short(e)}") from None


def _messages(stream: Any) -> Iterator[Mapping[str, Any]]:
    for message in stream:
        if isinstance(message, Mapping):
            yield message


def _short(error: Exception) -> str:
    """The engine's own explanation when there is one, on one line."""
    explanation = getattr(error, "explanation", None)
    text = str(explanation or error)
    return " ".join(text.split())
