"""beaker-py 1.x's workspace calls against beakerd: create, rename, archive and unarchive,
set_visibility (PATCH and GET /workspaces/{ws}/auth), and move (POST .../transfer).

The same wire shapes the `beaker workspace` commands use; this proves them with the public
client, in the virtualenvs tests/e2e/test_beaker_py.py makes (and caches).
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.backends.backend import Backend
from tests.e2e.test_beaker_py import RELEASES, _venv_python
from tests.server import Server, running_beakerd

pytestmark = pytest.mark.e2e

SCRIPT = r"""
import json, sys
from beaker import Beaker
from beaker.exceptions import BeakerError

def ws(w):
    return {"id": w.id, "full_name": w.full_name, "archived": w.archived}

def main(op, *args):
    b = Beaker.from_env(check_for_upgrades=False)
    if op == "create":
        return ws(b.workspace.create(args[0]))
    if op == "rename":
        return ws(b.workspace.rename(args[0], args[1]))
    if op == "archive":
        return ws(b.workspace.archive(args[0]))
    if op == "unarchive":
        return ws(b.workspace.unarchive(args[0]))
    if op == "visibility":
        permissions = b.workspace.set_visibility(args[1] == "public", workspace=args[0])
        return {"public": permissions.public, "requester_auth": permissions.requester_auth}
    if op == "move":
        b.workspace.move(*args[1:], workspace=args[0])
        return {}
    raise SystemExit(f"unknown op {op}")

try:
    result = main(*sys.argv[1:])
except BeakerError as e:
    result = {"error": type(e).__name__, "message": str(e)}
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, session_backend: Backend) -> Iterator[Server]:
    with running_beakerd(
        tmp_path_factory.mktemp("beaker-py-ws-beakerd"), session_backend.args()
    ) as running:
        yield running


@dataclass
class BeakerPy:
    label: str  # e.g. 1-38-1, for names of its own
    python: Path
    script: Path
    home: Path

    def __call__(self, *args: str) -> Any:
        proc = subprocess.run(
            [str(self.python), str(self.script), *args],
            env={"HOME": str(self.home), "PATH": "/usr/bin"},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, f"beaker-py {self.label} {args}:\n{proc.stdout}{proc.stderr}"
        return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", params=RELEASES, ids=[r[0] for r in RELEASES])
def beaker_py(
    request: pytest.FixtureRequest, server: Server, tmp_path_factory: pytest.TempPathFactory
) -> BeakerPy:
    label, requirement, expected = request.param
    script = tmp_path_factory.mktemp("ws-steps") / "steps.py"
    script.write_text(SCRIPT)
    python = _venv_python(label, requirement, expected)
    return BeakerPy(label.replace(".", "-"), python, script, server.home)


def api(server: Server, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"{server.url}/api/v3{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {server.password}",
                 "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:
        raw = answer.read()
    return json.loads(raw) if raw.strip() else None


def test_workspace_calls_of_beaker_py_work(beaker_py: BeakerPy, server: Server) -> None:
    name = f"tester/py-{beaker_py.label}"
    created = beaker_py("create", name)
    assert created["full_name"] == name, created
    renamed = beaker_py("rename", name, f"py-{beaker_py.label}-renamed")
    name = renamed["full_name"]
    assert name == f"tester/py-{beaker_py.label}-renamed" and renamed["id"] == created["id"]
    assert beaker_py("visibility", name, "public") == {"public": True, "requester_auth": "all"}
    assert api(server, "GET", f"/workspaces/{created['id']}")["public"] is True
    image = api(server, "POST", f"/images?name=moved-{beaker_py.label}",
                {"workspace": "tester/default", "imageID": "sha256:" + "0" * 64})  # fmt: skip
    assert beaker_py("move", name, image["id"]) == {}
    assert api(server, "GET", f"/images/{image['id']}")["workspaceRef"]["fullName"] == name
    assert beaker_py("archive", name)["archived"] is True
    assert beaker_py("unarchive", name)["archived"] is False
