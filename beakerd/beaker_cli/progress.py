"""How a push or pull shows its progress: docker's own lines on a pipe, live bars on a terminal.

On a pipe the output is exactly what `docker push` prints there (the seed's lines, see
`docker_engine.progress_line`), so scripts that read it keep working. On a terminal each layer
gets a bar and a `4.4MB/157.3MB` count, as docker draws them, and a last line sums up the bytes
moved and the layers the registry already had. Quiet and JSON output show nothing.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from beakerd.beaker_cli.docker_engine import progress_line

Direction = Literal["push", "pull"]

# Layer IDs in the engine's stream are short hex digests; other IDs are tags (`latest`).
_LAYER_ID = re.compile(r"[0-9a-f]{12}")
_REUSED = ("Layer already exists", "Already exists", "Mounted from")
_DONE = ("Pushed", "Pull complete", "Download complete", *_REUSED)


def docker_size(size: float) -> str:
    """Sizes as docker's progress shows them: decimal units, one decimal (`157.3MB`)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1000
    return f"{value:.1f}TB"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@dataclass
class Tally:
    """Bytes moved and layers reused, from the stream's messages."""

    direction: Direction
    sizes: dict[str, int] = field(default_factory=dict)
    moved: set[str] = field(default_factory=set)
    reused: set[str] = field(default_factory=set)

    def count(self, message: Mapping[str, Any]) -> None:
        ident, status = str(message.get("id") or ""), str(message.get("status") or "")
        if not _LAYER_ID.fullmatch(ident):
            return
        detail = message.get("progressDetail")
        if isinstance(detail, Mapping):
            # `total` is the layer's size; `current` is all there is for layers of unknown size.
            seen = detail.get("total") or detail.get("current")
            if isinstance(seen, int) and status in {"Pushing", "Downloading"}:
                self.sizes[ident] = max(self.sizes.get(ident, 0), seen)
        if status.startswith(_REUSED):
            self.reused.add(ident)
        elif status in {"Pushed", "Pull complete"}:
            self.moved.add(ident)

    def summary(self) -> str:
        sent = sum(self.sizes.get(ident, 0) for ident in self.moved)
        verb = "Sent" if self.direction == "push" else "Received"
        return (
            f"{verb} {docker_size(sent)} in {_plural(len(self.moved), 'layer')};"
            f" {_plural(len(self.reused), 'layer')} reused."
        )


class Display(Protocol):
    def __call__(self, message: Mapping[str, Any]) -> None: ...

    def close(self, finished: bool = True) -> None: ...


class Silent:
    def __call__(self, message: Mapping[str, Any]) -> None:
        pass

    def close(self, finished: bool = True) -> None:
        pass


class Lines:
    """docker's piped output: one line per status change, no bars, nothing more."""

    def __init__(self, show: Callable[[str], None]) -> None:
        self.show = show

    def __call__(self, message: Mapping[str, Any]) -> None:
        line = progress_line(message)
        if line is not None:
            self.show(line)

    def close(self, finished: bool = True) -> None:
        pass


class Bars:
    """A live bar per layer, the other lines printed above them, and a summary at the end."""

    def __init__(self, direction: Direction, file: TextIO) -> None:
        self.tally = Tally(direction)
        self.console = Console(file=file, highlight=False)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=40),
            TextColumn("{task.fields[amount]}"),
            console=self.console,
        )
        self.tasks: dict[str, TaskID] = {}
        self.progress.start()

    def __call__(self, message: Mapping[str, Any]) -> None:
        self.tally.count(message)
        ident, status = str(message.get("id") or ""), str(message.get("status") or "")
        if not _LAYER_ID.fullmatch(ident):
            line = progress_line(message)
            if line is not None:
                self.progress.console.print(line, markup=False)
            return
        task = self.tasks.get(ident)
        if task is None:
            task = self.progress.add_task(f"{ident}: {status}", total=None, amount="")
            self.tasks[ident] = task
        detail = message.get("progressDetail")
        current = detail.get("current") if isinstance(detail, Mapping) else None
        total = detail.get("total") if isinstance(detail, Mapping) else None
        if isinstance(current, int) and isinstance(total, int) and total > 0:
            amount = f"{docker_size(current)}/{docker_size(total)}"
            self.progress.update(
                task, description=f"{ident}: {status}", total=total, completed=current,
                amount=amount,
            )  # fmt: skip
        elif status.startswith(_DONE):
            size = self.progress.tasks[task].total or 1
            self.progress.update(task, description=f"{ident}: {status}", total=size, completed=size)
        else:
            self.progress.update(task, description=f"{ident}: {status}")

    def close(self, finished: bool = True) -> None:
        self.progress.stop()
        if finished:
            self.console.print(self.tally.summary(), markup=False)


def display_for(
    direction: Direction, *, silent: bool, show: Callable[[str], None], file: TextIO | None = None
) -> Display:
    """Bars on a terminal, docker's lines on a pipe, nothing for quiet or JSON output."""
    out = file or sys.stdout
    if silent:
        return Silent()
    if out.isatty():
        return Bars(direction, out)
    return Lines(show)
