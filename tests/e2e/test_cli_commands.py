"""The `beaker` CLI's commands beyond the seed's walkthrough, against a real beakerd and dockerd:
README's quick start as written (with examples/wordcount), workspaces, listing filters, pull
tags, and live progress on a terminal.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends.backend import Backend
from tests.e2e.docker_engine import DockerEngine, build_scratch_image
from tests.e2e.test_seed import REPO_ROOT, Beaker, create
from tests.server import Server, running_beakerd

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, session_backend: Backend) -> Iterator[Server]:
    with running_beakerd(tmp_path_factory.mktemp("cli-beakerd"), session_backend.args()) as running:
        yield running


@pytest.fixture(scope="module")
def beaker(server: Server, dockerd: DockerEngine) -> Beaker:
    return Beaker(server, dockerd)


def quick_start_commands() -> list[list[str]]:
    """The commands of README's quick start block that begins with `docker build`."""
    text = (REPO_ROOT / "README.md").read_text()
    block = re.search(
        r"```bash\n(docker build -t wordcount examples/wordcount\n.*?)```", text, re.S
    )
    assert block, "README's quick start lost its wordcount block"
    return [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]


def test_readmes_quick_start_works_as_written(beaker: Beaker) -> None:
    commands = quick_start_commands()
    assert commands[0] == ["docker", "build", "-t", "wordcount", "examples/wordcount"]
    beaker.engine.cli("build", "-t", "wordcount", str(REPO_ROOT / "examples" / "wordcount"))
    outputs = []
    for command in commands[1:]:
        assert command[0] == ".venv/bin/beaker", command
        outputs.append(beaker.ok(*command[1:]))
    assert outputs[0].splitlines()[-1] == "Done."
    [shown] = json.loads(outputs[2])
    assert shown["name"] == "wordcount" and shown["user"]["name"] == "tester"
    assert shown["description"] == "A simple example to count words in text."
    assert shown["workspace"] == "tester/default"
    assert beaker.engine.image_id("friendly-name") == beaker.engine.image_id("wordcount")
    assert "tester/wordcount" in outputs[4]


def test_workspace_lifecycle_create_move_visibility_rename_archive(
    beaker: Beaker, tmp_path: Path
) -> None:
    image = create(beaker, "to-move", [("m.txt", b"move me\n")], tmp_path)
    assert beaker.ok("workspace", "create", "papers").startswith("Workspace tester/papers created")
    assert "already exists" in beaker.fails("workspace", "create", "papers")
    assert beaker.ok("workspace", "move", "papers", "to-move") == (
        "Moved 1 image into workspace tester/papers.\n"
    )
    listed = beaker.ok("workspace", "images", "papers", "-q").split()
    assert listed == [image.image_id]
    assert beaker.inspect(image.image_id)[0]["workspace"] == "tester/papers"
    assert beaker.ok("workspace", "set-visibility", "papers", "public") == (
        "Workspace tester/papers is now public.\n"
    )
    [shown] = json.loads(beaker.ok("workspace", "get", "tester/papers"))
    assert shown["public"] is True and shown["images"] == 1
    beaker.ok("workspace", "rename", "papers", "theses")
    assert beaker.ok("workspace", "archive", "theses") == "Workspace tester/theses archived.\n"
    error = beaker.fails("image", "create", "-w", "theses", "-n", "late", "to-move")
    assert "archived" in error
    rows = beaker.ok("workspace", "list", "tester").splitlines()
    assert any(row.split()[1:2] == ["tester/theses"] and "archived" in row for row in rows)


def test_list_filters_by_author_and_text_and_sorts_by_name(beaker: Beaker, tmp_path: Path) -> None:
    for name in ("zeta-list", "alpha-list"):
        create(beaker, name, [(f"{name}.txt", name.encode())], tmp_path)
    by_name = beaker.ok("image", "list", "--text=-list", "--sort", "name")
    names = [row.split()[1] for row in by_name.splitlines()[1:]]
    assert names == ["tester/alpha-list", "tester/zeta-list"]
    assert beaker.ok("image", "list", "--author", "nobody-at-all").splitlines()[1:] == []
    [row] = [r for r in by_name.splitlines() if "alpha-list" in r]
    assert re.search(r"(just now|\d+s ago)", row) and re.search(r"\d+(\.\d)? (B|KiB)", row), row


def test_pull_with_a_friendly_tag_keeps_the_tag_an_earlier_pull_made(
    beaker: Beaker, tmp_path: Path
) -> None:
    image = create(beaker, "pull-twice", [("p.txt", b"pull me twice\n")], tmp_path)
    repository = beaker.api(f"/images/{image.image_id}/repository")["imageTag"]
    beaker.ok("image", "pull", "pull-twice")
    out = beaker.ok("image", "pull", "pull-twice", "twice-friendly")
    assert "Tagged twice-friendly:latest." in out.splitlines()
    assert beaker.engine.image_id(f"{repository}:latest") == image.local_id
    assert beaker.engine.image_id("twice-friendly") == image.local_id
    assert beaker.ok("image", "pull", "-q", "pull-twice", "quiet-friendly") == (
        "quiet-friendly:latest\n"
    )


def run_on_a_terminal(beaker: Beaker, *args: str) -> tuple[int, str]:
    """`beaker ARGS` with stdout on a pty, as in a terminal; everything it wrote there."""
    master, slave = pty.openpty()
    env = beaker.env(TERM="xterm", PYTHONIOENCODING="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "beakerd.beaker_cli", *args],
        env=env, stdout=slave, stderr=slave, cwd=REPO_ROOT,
    )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    code = proc.wait(timeout=300)
    return code, b"".join(chunks).decode("utf-8", errors="replace")


def test_create_and_pull_on_a_terminal_show_bars_and_a_summary(
    beaker: Beaker, tmp_path: Path
) -> None:
    build_scratch_image(
        beaker.engine, "on-a-tty", [("big.bin", os.urandom(3_000_000))], tmp_path / "tty"
    )
    code, text = run_on_a_terminal(beaker, "image", "create", "--name", "on-a-tty", "on-a-tty")
    assert code == 0, text
    assert "━" in text, text  # a bar
    assert re.search(r"Sent \d+(\.\d)?[kM]?B in 1 layer; 0 layers reused\.", text), text
    assert text.rstrip().endswith("Done.")
    piped = beaker.ok("image", "pull", "on-a-tty")
    assert "━" not in piped and "Received" not in piped
    beaker.engine.cli("image", "rm", "on-a-tty")
    code, text = run_on_a_terminal(beaker, "image", "pull", "on-a-tty", "tty-pulled")
    assert code == 0, text
    assert "Received" in text and "Tagged tty-pulled:latest." in text
