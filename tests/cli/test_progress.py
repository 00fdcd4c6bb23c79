"""Push and pull progress: the seed's lines on a pipe, bars and a summary on a terminal (a pty)."""

from __future__ import annotations

import io
import os
import pty
import sys
import threading
from typing import Any

import pytest

from beakerd.beaker_cli.progress import Bars, Lines, Silent, Tally, display_for, docker_size
from tests.cli.fake_api import FakeApi
from tests.cli.test_cli import FakeEngine, beaker, configured, engine, serve_create_flow

__all__ = ["configured", "engine"]  # fixtures shared with test_cli

MB = 1_000_000
# A push as the engine streams it: one layer sent in two steps, one the registry already had.
PUSH: list[dict[str, Any]] = [
    {"status": "The push refers to repository [127.0.0.1:5000/r1]"},
    {"status": "Preparing", "id": "172b7a93847f", "progressDetail": {}},
    {"status": "Preparing", "id": "3a1dff9afffd", "progressDetail": {}},
    {"status": "Layer already exists", "id": "3a1dff9afffd", "progressDetail": {}},
    {"status": "Pushing", "id": "172b7a93847f", "progress": "[=>  ]",
     "progressDetail": {"current": 4_400_000, "total": 157_300_000}},
    {"status": "Pushing", "id": "172b7a93847f", "progress": "[===>]",
     "progressDetail": {"current": 157_300_000, "total": 157_300_000}},
    {"status": "Pushed", "id": "172b7a93847f", "progressDetail": {}},
    {"status": "latest: digest: sha256:" + "4" * 64 + " size: 940"},
]  # fmt: skip
SEED_LINES = [
    "The push refers to repository [127.0.0.1:5000/r1]",
    "172b7a93847f: Preparing",
    "3a1dff9afffd: Preparing",
    "3a1dff9afffd: Layer already exists",
    "172b7a93847f: Pushed",
    "latest: digest: sha256:" + "4" * 64 + " size: 940",
]


def test_sizes_read_as_docker_prints_them() -> None:
    assert [docker_size(n) for n in (940, 4_400_000, 157_300_000)] == ["940B", "4.4MB", "157.3MB"]


def test_the_tally_counts_bytes_sent_and_layers_reused() -> None:
    tally = Tally("push")
    for message in PUSH:
        tally.count(message)
    assert tally.summary() == "Sent 157.3MB in 1 layer; 1 layer reused."


def test_on_a_pipe_only_docker_lines_are_shown_and_no_summary() -> None:
    shown: list[str] = []
    display = display_for("push", silent=False, show=shown.append, file=io.StringIO())
    assert isinstance(display, Lines)
    for message in PUSH:
        display(message)
    display.close()
    assert shown == SEED_LINES


def test_quiet_shows_nothing() -> None:
    assert isinstance(display_for("push", silent=True, show=print), Silent)


@pytest.fixture(autouse=True)
def plain_terminal_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal as most are: whatever the test runner's environment says about its own."""
    monkeypatch.setenv("TERM", "xterm-256color")
    for var in ("TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(var, raising=False)


class Terminal:
    """A pty whose slave end stands in for stdout; everything written is collected."""

    def __init__(self) -> None:
        self.master, slave = pty.openpty()
        self.file = open(slave, "w", encoding="utf-8", closefd=True)
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the slave end closed
                return
            if not chunk:
                return
            self.chunks.append(chunk)

    def text(self) -> str:
        self.file.close()
        self.reader.join(5)
        os.close(self.master)
        return b"".join(self.chunks).decode("utf-8", errors="replace")


def test_on_a_terminal_a_bar_per_layer_and_a_summary() -> None:
    terminal = Terminal()
    display = display_for("push", silent=False, show=print, file=terminal.file)
    assert isinstance(display, Bars)
    for message in PUSH:
        display(message)
    display.close()
    text = terminal.text()
    assert "4.4MB/157.3MB" in text or "157.3MB/157.3MB" in text
    assert "━" in text  # rich's bar
    assert "The push refers to repository [127.0.0.1:5000/r1]" in text
    assert "Sent 157.3MB in 1 layer; 1 layer reused." in text


def test_create_on_a_terminal_shows_bars_and_the_seeds_first_and_last_lines(
    configured: FakeApi, engine: FakeEngine, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    serve_create_flow(configured)
    engine.push_messages = PUSH
    terminal = Terminal()
    with capsys.disabled():
        monkeypatch.setattr(sys, "stdout", terminal.file)
        code = beaker(capsys, "image", "create", "--name", "hello", "hello")[0]
        monkeypatch.setattr(sys, "stdout", sys.__stdout__)
    text = terminal.text()
    assert code == 0
    assert "Pushing hello as hello (bp_abcdefghijkl)..." in text
    assert "157.3MB" in text and "Sent 157.3MB in 1 layer; 1 layer reused." in text
    assert text.rstrip().endswith("Done.")


def test_create_on_a_pipe_prints_exactly_the_seeds_lines(
    configured: FakeApi, engine: FakeEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_create_flow(configured)
    engine.push_messages = PUSH
    out = beaker(capsys, "image", "create", "--name", "hello", "hello")[1]
    assert out.splitlines() == [
        "Pushing hello as hello (bp_abcdefghijkl)...", *SEED_LINES, "Done.",
    ]  # fmt: skip
