"""`python -m tests.durability.gc_killer N ARGS...`: run `beakerd ARGS` and SIGKILL it right
after its N-th step (0: never), where a step is any rename, link or unlink of a file and the
start or the end of any database transaction: every point at which a kill leaves a different
state behind. On a normal exit the last line of stderr is `steps: <count>`."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiosqlite

from beakerd.cli import main as beakerd_main
from storage.database import Database

_steps = 0
_kill_after = 0


def _step() -> None:
    global _steps
    _steps += 1
    if _steps == _kill_after:
        os.kill(os.getpid(), signal.SIGKILL)


def _counted(operation: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        result = operation(*args, **kwargs)
        _step()
        return result

    return run


def _install() -> None:
    for name in ("rename", "replace", "link", "unlink"):
        setattr(os, name, _counted(getattr(os, name)))
    transaction = Database.transaction

    @contextlib.asynccontextmanager
    async def counted(self: Database) -> AsyncIterator[aiosqlite.Connection]:
        _step()
        async with transaction(self) as conn:
            yield conn
        _step()

    Database.transaction = counted  # type: ignore[method-assign]


if __name__ == "__main__":
    _kill_after = int(sys.argv[1])
    _install()
    code = beakerd_main(sys.argv[2:])
    print(f"steps: {_steps}", file=sys.stderr)
    sys.exit(code)
