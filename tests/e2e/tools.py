"""Small helpers shared by the end-to-end tests: finding client tools and running them."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Protocol

import pytest


class Registry(Protocol):
    """What an end-to-end test needs to know about the registry under test."""

    @property
    def address(self) -> str: ...  # host:port, as clients write it in image references

    @property
    def url(self) -> str: ...

    @property
    def username(self) -> str: ...

    @property
    def password(self) -> str | None: ...


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> None:
    """Skip on a developer machine, fail under CI: there a missing tool is a broken setup."""
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed")
        raise AssertionError("unreachable")  # pytest.skip/fail raise; this keeps mypy content
    return path


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        unavailable(f"{what} needs root")


def run(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    check: bool = True,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run a client command; stdout and stderr together, since clients print progress to both."""
    proc = subprocess.run(
        list(args),
        env=dict(env) if env is not None else None,
        input=input_text,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed with exit code {proc.returncode}: {' '.join(args)}\n{proc.stdout}"
        )
    return proc


def creds(registry: Registry) -> str | None:
    """`user:password` for clients that take one flag, or None when the registry is open."""
    if registry.password is None:
        return None
    return f"{registry.username}:{registry.password}"
