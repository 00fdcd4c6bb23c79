"""beaker-py 2.8.1 against a real `beakerd serve` and a real Docker engine.

beaker-py 2.x creates and commits images over REST and does everything else over gRPC with TLS:
it reads `rpc_address` from the Beaker config beakerd wrote, and trusts beakerd's CA through
GRPC_DEFAULT_SSL_ROOTS_FILE_PATH. It lives in its own virtualenv (made once, as for 1.x in
test_beaker_py.py); a small script runs each step there and answers with one JSON line.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.backends.backend import Backend
from tests.e2e.docker_engine import DockerEngine, build_scratch_image
from tests.e2e.test_beaker_py import _venv_python
from tests.server import Server, free_port, running_beakerd

pytestmark = pytest.mark.e2e

SCRIPT = r"""
import json, sys
import grpc
from beaker import Beaker
from beaker.exceptions import BeakerError
from beaker.types import BeakerSortOrder

def image(i):
    return {"id": i.id, "name": i.name, "full_name": i.full_name,
            "description": i.description, "committed": i.HasField("committed"),
            "committed_at": i.committed.ToJsonString() if i.HasField("committed") else None,
            "workspace_id": i.workspace_id, "author_id": i.author_id,
            "original_tag": i.original_tag}

def workspace(w):
    return {"id": w.id, "name": w.name, "org": w.owner_org.name, "images": w.size.images}

def main(b, op, *args):
    if op == "create":
        name, tag, description = args
        return image(b.image.create(name, tag, description=description or None))
    if op == "commit_twice":
        name, tag = args
        made = b.image.create(name, tag, commit=False)
        # `made` stays uncommitted here: the second commit PATCHes again.
        return [image(b.image.commit(made)), image(b.image.commit(made))]
    if op == "get":
        return image(b.image.get(args[0]))
    if op == "list":
        opts = json.loads(args[0])
        kwargs = {"sort_field": opts.get("sort_field", "name"), "limit": opts.get("limit")}
        if "workspace" in opts:
            kwargs["workspace"] = b.workspace.get(opts["workspace"])
        if "author" in opts:
            kwargs["author"] = b.user.get(opts["author"])
        if "sort_order" in opts:
            kwargs["sort_order"] = BeakerSortOrder[opts["sort_order"]]
        return [i.name for i in b.image.list(**kwargs)]
    if op == "update":
        ref, changes = args[0], json.loads(args[1])
        return image(b.image.update(b.image.get(ref), **changes))
    if op == "delete":
        b.image.delete(b.image.get(args[0]))
        return {}
    if op == "whoami":
        return {"name": b.user.get().name, "org": b.organization.get().name}
    if op == "workspace_get":
        return workspace(b.workspace.get(args[0]))
    if op == "workspace_create":
        return workspace(b.workspace.create(args[0], description="made by beaker-py 2"))
    if op == "workspace_list":
        return [w.name for w in b.workspace.list()]
    if op == "dataset_get":
        return {"dataset": b.dataset.get(args[0]).id}
    raise SystemExit(f"unknown op {op}")

try:
    # No upgrade check: it would ask PyPI, and tests only ever talk to 127.0.0.1.
    with Beaker.from_env(check_for_upgrades=False) as b:
        result = main(b, *sys.argv[1:])
except (BeakerError, NotImplementedError) as e:
    result = {"error": type(e).__name__, "message": str(e)}
except grpc.RpcError as e:
    result = {"error": "RpcError", "code": e.code().name, "message": e.details()}
print(json.dumps(result))
"""


@dataclass
class BeakerPy2:
    python: Path
    script: Path
    server: Server
    engine: DockerEngine

    def run(self, *args: str) -> Any:
        env = {k: v for k, v in self.engine.env.items() if not k.startswith("BEAKER_")}
        env["HOME"] = str(self.server.home)  # the config beakerd wrote, rpc_address included
        env["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = str(self.server.data_dir / "tls" / "ca.crt")
        proc = subprocess.run(
            [str(self.python), str(self.script), *args],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, f"beaker-py 2 {args}:\n{proc.stdout}{proc.stderr}"
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def local_image(self, name: str, tmp: Path) -> str:
        """A local Docker image tagged `local-<name>` (one small layer); returns the tag."""
        build_scratch_image(self.engine, f"local-{name}", [(f"{name}.txt", name.encode())], tmp)
        return f"local-{name}"

    def create(self, name: str, tmp: Path, description: str = "") -> dict[str, Any]:
        created = self.run("create", name, self.local_image(name, tmp / name), description)
        assert "error" not in created, created
        return created


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, session_backend: Backend) -> Iterator[Server]:
    # A gRPC port of its own choosing: the default (HTTP port + 1) may be taken on a busy host.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BEAKERD_GRPC_PORT", str(free_port()))
        with running_beakerd(
            tmp_path_factory.mktemp("beaker-py2-beakerd"), session_backend.args()
        ) as running:
            yield running


@pytest.fixture(scope="session")
def beaker_py2_python() -> Path:
    # The `docker` extra: image.create pushes through the Docker engine with the docker SDK.
    return _venv_python("2.8.1", "beaker-py[docker]==2.8.1", "2.8.1")


@pytest.fixture
def beaker_py2(
    beaker_py2_python: Path,
    server: Server,
    dockerd: DockerEngine,
    tmp_path_factory: pytest.TempPathFactory,
) -> BeakerPy2:
    python = beaker_py2_python
    script = tmp_path_factory.getbasetemp() / "beaker_py2_steps.py"
    script.write_text(SCRIPT)
    return BeakerPy2(python, script, server, dockerd)


def test_first_start_writes_rpc_address_and_prints_how_to_trust_the_ca(server: Server) -> None:
    config = yaml.safe_load((server.home / ".beaker" / "config.yml").read_text())
    host, _, port = config["rpc_address"].partition(":")
    assert host == "127.0.0.1" and int(port) != server.port
    ca = server.data_dir / "tls" / "ca.crt"
    assert ca.exists()  # made although HTTP is plain
    assert f"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH={ca}" in server.log()
    assert f"rpc_address: {config['rpc_address']}" in server.log()


def test_create_with_a_description_then_get_by_id_full_name_and_bare_name(
    beaker_py2: BeakerPy2, tmp_path: Path
) -> None:
    created = beaker_py2.create("hello2", tmp_path, description="made by beaker-py 2")
    assert created["committed"] is True
    assert (created["name"], created["full_name"]) == ("hello2", "tester/hello2")
    assert created["description"] == "made by beaker-py 2"
    assert created["original_tag"] == "local-hello2"
    for ref in (created["id"], "tester/hello2", "hello2"):
        assert beaker_py2.run("get", ref)["id"] == created["id"], ref


def test_a_second_create_with_the_same_name_is_image_conflict(
    beaker_py2: BeakerPy2, tmp_path: Path
) -> None:
    beaker_py2.create("twice2", tmp_path)
    again = beaker_py2.run("create", "twice2", "local-twice2", "")
    assert again["error"] == "BeakerImageConflict", again


def test_list_by_workspace_and_author_sorted_by_created_and_name_with_a_limit(
    beaker_py2: BeakerPy2, tmp_path: Path
) -> None:
    for name in ("list-b", "list-c", "list-a"):
        beaker_py2.create(name, tmp_path)

    def listed(**opts: Any) -> list[str]:
        names = beaker_py2.run("list", json.dumps(opts))
        assert isinstance(names, list), names
        return [n for n in names if n.startswith("list-")]

    in_default = listed(workspace="tester/default")
    assert in_default == ["list-a", "list-b", "list-c"]  # beaker-py sorts by name by default
    assert listed(author="tester") == in_default
    newest = listed(sort_field="created", sort_order="descending")
    assert newest == ["list-a", "list-c", "list-b"]
    by_name_down = listed(sort_order="descending")
    assert by_name_down == ["list-c", "list-b", "list-a"]
    limited = beaker_py2.run("list", json.dumps({"sort_field": "created", "limit": 2}))
    assert limited[:2] == ["list-a", "list-c"] and len(limited) == 2


def test_update_the_description_and_rename_keep_the_id(
    beaker_py2: BeakerPy2, tmp_path: Path
) -> None:
    created = beaker_py2.create("before2", tmp_path)
    described = beaker_py2.run("update", created["id"], json.dumps({"description": "new"}))
    assert (described["id"], described["description"]) == (created["id"], "new")
    renamed = beaker_py2.run("update", created["id"], json.dumps({"name": "after2"}))
    assert (renamed["id"], renamed["name"]) == (created["id"], "after2")
    assert beaker_py2.run("get", "tester/after2")["id"] == created["id"]
    assert beaker_py2.run("get", "tester/before2")["error"] == "BeakerImageNotFound"


def test_committing_twice_changes_nothing(beaker_py2: BeakerPy2, tmp_path: Path) -> None:
    tag = beaker_py2.local_image("commit2", tmp_path)
    first, second = beaker_py2.run("commit_twice", "commit2", tag)
    assert first["committed"] and second["committed"]
    assert first["committed_at"] == second["committed_at"]


def test_delete_then_the_image_is_not_found(beaker_py2: BeakerPy2, tmp_path: Path) -> None:
    created = beaker_py2.create("delete2", tmp_path)
    assert beaker_py2.run("delete", created["id"]) == {}
    assert beaker_py2.run("get", created["id"])["error"] == "BeakerImageNotFound"


def test_unknown_images_are_image_not_found(beaker_py2: BeakerPy2) -> None:
    for ref in ("tester/no-such-image", "no-such-image", "bp_aaaaaaaaaaaa"):
        assert beaker_py2.run("get", ref)["error"] == "BeakerImageNotFound", ref


def test_workspaces_get_list_and_create(beaker_py2: BeakerPy2) -> None:
    default = beaker_py2.run("workspace_get", "tester/default")
    assert (default["name"], default["org"]) == ("tester/default", "tester")
    made = beaker_py2.run("workspace_create", "tester/made-by-py2")
    assert made["name"] == "tester/made-by-py2" and made["images"] == 0
    assert {"tester/default", "tester/made-by-py2"} <= set(beaker_py2.run("workspace_list"))
    again = beaker_py2.run("workspace_create", "tester/made-by-py2")
    assert (again["error"], again["code"]) == ("RpcError", "ALREADY_EXISTS"), again
    missing = beaker_py2.run("workspace_get", "tester/no-such-workspace")
    assert missing["error"] == "BeakerWorkspaceNotFound"


def test_whoami(beaker_py2: BeakerPy2) -> None:
    assert beaker_py2.run("whoami") == {"name": "tester", "org": "tester"}


def test_an_rpc_beakerd_does_not_serve_is_a_clear_not_implemented(beaker_py2: BeakerPy2) -> None:
    answer = beaker_py2.run("dataset_get", "ds_anything")
    assert answer["error"] == "NotImplementedError"
    assert "GetDataset" in answer["message"] and "GetImage" in answer["message"]


def test_with_two_workers_both_serve_the_one_grpc_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import grpc
    from beaker import beaker_pb2 as pb
    from beaker import beaker_pb2_grpc

    monkeypatch.setenv("BEAKERD_GRPC_PORT", str(free_port()))
    with running_beakerd(tmp_path, ["--workers", "2"]) as running:
        config = yaml.safe_load((running.home / ".beaker" / "config.yml").read_text())
        ca = (running.data_dir / "tls" / "ca.crt").read_bytes()
        metadata = [("authorization", f"bearer {config['user_token']}")]
        for _ in range(10):  # a connection each: the kernel spreads them over the workers
            credentials = grpc.ssl_channel_credentials(ca)
            with grpc.secure_channel(config["rpc_address"], credentials) as channel:
                stub = beaker_pb2_grpc.BeakerStub(channel)
                answer = stub.GetUser(pb.GetUserRequest(), metadata=metadata, timeout=10)
                assert answer.user.name == "tester"
        serving = [line for line in running.log().splitlines() if "gRPC (TLS)" in line]
        assert len({line.split("[")[1].split("]")[0] for line in serving}) == 2, serving
