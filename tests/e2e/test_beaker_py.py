"""beaker-py 1.x, the public Python client, against a real beakerd and a real Docker engine.

Two releases: the newest 1.x (`beaker-py<2`, 1.38.1) and 1.34.3 (the last without grpcio, and
stricter about workspaces). Each lives in its own virtualenv under a cache folder, made once by
the session and reused; a small script runs inside it and answers each step as one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.docker_engine import DockerEngine, build_scratch_image
from tests.e2e.tools import unavailable
from tests.server import Server, running_beakerd

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]

# (label, pip requirement, the version it must install)
RELEASES = [("1.38.1", "beaker-py<2", "1."), ("1.34.3", "beaker-py==1.34.3", "1.34.3")]

# Runs inside the venv: one step per call, its result (or the BeakerError raised) as JSON.
SCRIPT = r"""
import json, sys
from beaker import Beaker
from beaker.exceptions import BeakerError

def image(i):
    return {"id": i.id, "name": i.name, "full_name": i.full_name,
            "committed": i.committed is not None, "original_tag": i.original_tag,
            "author": i.author.name, "workspace": i.workspace_ref.full_name}

def main(op, *args):
    # No upgrade check: it would ask PyPI, and tests only ever talk to 127.0.0.1.
    b = Beaker.from_env(check_for_upgrades=False)
    if op == "create":
        name, local_tag = args
        return image(b.image.create(name, local_tag, quiet=True))
    if op == "get":
        return image(b.image.get(args[0]))
    if op == "list":
        return [i.name for i in b.workspace.images(args[0])]
    if op == "rename":
        return image(b.image.rename(args[0], args[1]))
    if op == "pull":
        return {"docker_id": b.image.pull(args[0], quiet=True).id}
    if op == "delete":
        b.image.delete(args[0])
        return {}
    raise SystemExit(f"unknown op {op}")

try:
    result = main(*sys.argv[1:])
except BeakerError as e:
    result = {"error": type(e).__name__, "message": str(e)}
print(json.dumps(result))
"""


def _cache_dir() -> Path:
    explicit = os.environ.get("BEAKERD_TEST_CACHE")
    base = Path(explicit) if explicit else Path.home() / ".cache" / "beakerd-tests"
    base.mkdir(parents=True, exist_ok=True)
    return base


def _installed_version(python: Path) -> str | None:
    proc = subprocess.run(
        [str(python), "-c", "import beaker.version as v; print(v.VERSION)"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return proc.stdout.strip() if proc.returncode == 0 else None


def _venv_python(label: str, requirement: str, expected: str) -> Path:
    """The venv's python with `requirement` installed: reused when present, made otherwise."""
    venv = _cache_dir() / f"venv-{label}"
    python = venv / "bin" / "python"
    version = _installed_version(python) if python.exists() else None
    if version is None or not version.startswith(expected):
        made = subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if made.returncode != 0:
            unavailable(f"cannot make a venv for {requirement}: {made.stderr.strip()}")
        pip = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             requirement],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        if pip.returncode != 0:
            unavailable(f"pip install {requirement!r} failed: {pip.stderr.strip()[-2000:]}")
        version = _installed_version(python)
    assert version is not None and version.startswith(expected), version
    return python


@dataclass
class BeakerPy:
    label: str
    python: Path
    script: Path
    server: Server
    engine: DockerEngine

    def name(self, base: str) -> str:
        """Per-release image names: both releases share one server."""
        return f"{base}-{self.label.replace('.', '-')}"

    def run(self, *args: str) -> Any:
        env = {k: v for k, v in self.engine.env.items() if not k.startswith("BEAKER_")}
        env["HOME"] = str(self.server.home)  # beaker-py reads ~/.beaker/config.yml, as written
        proc = subprocess.run(
            [str(self.python), str(self.script), *args],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, f"beaker-py {self.label} {args}:\n{proc.stdout}{proc.stderr}"
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def create(
        self, base: str, files: list[tuple[str, bytes]], tmp: Path
    ) -> tuple[dict[str, Any], str]:
        """Build a local image, upload it with beaker-py; (the Image, the local Docker ID)."""
        name = self.name(base)
        local_id = build_scratch_image(self.engine, f"local-{name}", files, tmp / name)
        created = self.run("create", name, f"local-{name}")
        assert "error" not in created, created
        return created, local_id


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # On PostgreSQL and S3 the same tests run through nginx in front of three replicas
    # (tests/cluster/test_beaker_py_through_nginx.py).
    with running_beakerd(tmp_path_factory.mktemp("beaker-py-beakerd")) as running:
        yield running


@pytest.fixture(scope="session", params=RELEASES, ids=[r[0] for r in RELEASES])
def beaker_py_python(request: pytest.FixtureRequest) -> tuple[str, Path]:
    label, requirement, expected = request.param
    return label, _venv_python(label, requirement, expected)


@pytest.fixture
def beaker_py(
    beaker_py_python: tuple[str, Path], server: Server, dockerd: DockerEngine,
    tmp_path_factory: pytest.TempPathFactory,
) -> BeakerPy:  # fmt: skip
    label, python = beaker_py_python
    script = tmp_path_factory.getbasetemp() / "beaker_py_steps.py"
    script.write_text(SCRIPT)
    return BeakerPy(label, python, script, server, dockerd)


def test_create_uploads_and_commits(beaker_py: BeakerPy, tmp_path: Path) -> None:
    created, _ = beaker_py.create("hello", [("hello.txt", b"hello from beaker-py\n")], tmp_path)
    assert created["committed"] is True
    assert created["name"] == beaker_py.name("hello")
    assert created["full_name"] == f"tester/{beaker_py.name('hello')}"
    assert created["author"] == "tester"
    assert created["workspace"] == "tester/default"
    assert created["original_tag"] == f"local-{beaker_py.name('hello')}"


def test_get_by_id_full_name_and_bare_name(beaker_py: BeakerPy, tmp_path: Path) -> None:
    created, _ = beaker_py.create("getme", [("g.txt", b"get me\n")], tmp_path)
    name = beaker_py.name("getme")
    for ref in (created["id"], f"tester/{name}", name):
        assert beaker_py.run("get", ref)["id"] == created["id"], ref


def test_list_in_workspace_shows_the_image(beaker_py: BeakerPy, tmp_path: Path) -> None:
    beaker_py.create("listed", [("l.txt", b"list me\n")], tmp_path)
    assert beaker_py.name("listed") in beaker_py.run("list", "tester/default")


def test_rename_keeps_the_id(beaker_py: BeakerPy, tmp_path: Path) -> None:
    created, _ = beaker_py.create("old", [("r.txt", b"rename me\n")], tmp_path)
    new_name = beaker_py.name("new")
    renamed = beaker_py.run("rename", created["id"], new_name)
    assert (renamed["id"], renamed["name"]) == (created["id"], new_name)
    assert beaker_py.run("get", f"tester/{new_name}")["id"] == created["id"]
    assert beaker_py.run("get", f"tester/{beaker_py.name('old')}")["error"] == "ImageNotFound"


def test_pull_gives_back_the_pushed_image(beaker_py: BeakerPy, tmp_path: Path) -> None:
    created, local_id = beaker_py.create("pullme", [("p.txt", b"pull me\n")], tmp_path)
    beaker_py.engine.cli("image", "rm", "--force", local_id)
    assert beaker_py.run("pull", created["id"])["docker_id"] == local_id


def test_delete_then_the_image_is_not_found(beaker_py: BeakerPy, tmp_path: Path) -> None:
    created, _ = beaker_py.create("deleteme", [("d.txt", b"delete me\n")], tmp_path)
    assert beaker_py.run("delete", created["id"]) == {}
    assert beaker_py.run("get", created["id"])["error"] == "ImageNotFound"


def test_unknown_image_is_image_not_found(beaker_py: BeakerPy) -> None:
    for ref in ("tester/no-such-image", "no-such-image", "bp_aaaaaaaaaaaa"):
        assert beaker_py.run("get", ref)["error"] == "ImageNotFound", ref


def test_duplicate_name_is_image_conflict(beaker_py: BeakerPy, tmp_path: Path) -> None:
    created, _ = beaker_py.create("twice", [("t.txt", b"twice\n")], tmp_path)
    again = beaker_py.run("create", beaker_py.name("twice"), f"local-{beaker_py.name('twice')}")
    assert again["error"] == "ImageConflict", again
    assert beaker_py.run("get", beaker_py.name("twice"))["id"] == created["id"]


def test_the_cli_sees_what_beaker_py_made(beaker_py: BeakerPy, tmp_path: Path) -> None:
    created, _ = beaker_py.create("shared", [("s.txt", b"one login for both\n")], tmp_path)
    env = {k: v for k, v in beaker_py.engine.env.items() if not k.startswith("BEAKER_")}
    env.update(HOME=str(beaker_py.server.home), PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "beakerd.beaker_cli", "image", "inspect", created["id"]],
        env=env, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [shown] = json.loads(proc.stdout)
    assert shown["name"] == beaker_py.name("shared")
