"""What a test needs to know of the backend it runs on."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tests.backends.postgres import PostgresServer


@dataclass(frozen=True)
class Backend:
    """A kind of backend; each call of `settings` or `args` gives a new, empty store on it."""

    name: str
    postgres: PostgresServer | None = None

    def settings(self) -> dict[str, Any]:
        """Settings for an in-process app."""
        if self.postgres is None:
            return {}
        # A thread of its own: asyncio.run refuses to run inside an async fixture's loop.
        with ThreadPoolExecutor(1) as pool:
            url = pool.submit(asyncio.run, self.postgres.create_database()).result()
        return {"database": url}

    def args(self) -> list[str]:
        """The same, as flags of `beakerd serve`."""
        flags: list[str] = []
        for key, value in self.settings().items():
            flags += [f"--{key.replace('_', '-')}", str(value)]
        return flags
