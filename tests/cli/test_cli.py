"""The `beaker` command as a whole: arguments, flows (with a fake engine), and error reporting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from beakerd.beaker_cli import cli
from beakerd.beaker_cli.docker_engine import DockerEngine, Observer
from beakerd.beaker_cli.errors import CliError
from beakerd.beaker_cli.models import RepositoryAuth
from tests.cli.fake_api import ALICE, FakeApi, Request, image

REPO = {
    "imageTag": "127.0.0.1:5000/r1",
    "auth": {"server_address": "127.0.0.1:5000", "user": "alice", "password": "jwt"},
}


class FakeEngine(DockerEngine):
    """The engine calls the commands make, with a push that succeeds or fails on demand."""

    def __init__(self, push_error: str | None = None) -> None:
        self.push_error = push_error
        self.calls: list[str] = []
        self.references: set[str] = set()
        # What the engine's push stream says, message by message.
        self.push_messages: list[dict[str, Any]] = [{"id": "abc", "status": "Pushed"}]

    def image_id(self, reference: str) -> str:
        if reference != "hello":
            raise CliError(f"no Docker image {reference!r} in the local engine")
        return "sha256:" + "1" * 64

    def tag(self, image: str, repository: str, tag: str = "latest") -> None:
        self.calls.append(f"tag {image} {repository}:{tag}")

    def untag(self, reference: str) -> None:
        self.calls.append(f"untag {reference}")

    def has_reference(self, reference: str) -> bool:
        return reference in self.references

    def push(self, repository: str, auth: RepositoryAuth, observe: Observer) -> None:
        self.calls.append(f"push {repository} as {auth.user}")
        for message in self.push_messages:
            observe(message)
        if self.push_error:
            raise CliError(self.push_error)

    def pull(self, repository: str, auth: RepositoryAuth, observe: Observer) -> None:
        self.calls.append(f"pull {repository}")
        observe({"id": "latest", "status": "Pulling from r1"})


@pytest.fixture
def configured(home: Path, fake_api: FakeApi) -> FakeApi:
    config = home / ".beaker" / "config.yml"
    config.parent.mkdir()
    config.write_text(
        yaml.safe_dump(
            {
                "agent_address": fake_api.url,
                "user_token": "bk_t",
                "default_workspace": "alice/default",
            }
        )
    )
    return fake_api


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEngine]:
    fake = FakeEngine()
    monkeypatch.setattr(DockerEngine, "connect", classmethod(lambda cls: fake))
    yield fake


def beaker(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def serve_create_flow(api: FakeApi) -> None:
    api.on("GET", "/workspaces/alice%2Fdefault", 200, {"id": "ws_1", "name": "default"})
    api.on("POST", "/images", 200, image(committed=None))
    api.on("GET", "/images/bp_abcdefghijkl/repository", 200, REPO)
    api.on("PATCH", "/images/bp_abcdefghijkl", 200, image())
    api.on("DELETE", "/images/bp_abcdefghijkl", 204)


def test_create_pushes_then_commits(
    configured: FakeApi, engine: FakeEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_create_flow(configured)
    code, out, err = beaker(capsys, "image", "create", "--name", "hello", "hello")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "Pushing hello as hello (bp_abcdefghijkl)...", "abc: Pushed", "Done.",
    ]  # fmt: skip
    assert engine.calls == [
        f"tag sha256:{'1' * 64} 127.0.0.1:5000/r1:latest",
        "push 127.0.0.1:5000/r1 as alice",
        "untag 127.0.0.1:5000/r1:latest",
    ]
    post = next(r for r in configured.requests if r.method == "POST")
    assert post.body["workspace"] == "ws_1"
    assert post.body["imageID"] == "sha256:" + "1" * 64
    repo_request = next(r for r in configured.requests if r.path.endswith("/repository"))
    assert repo_request.query == {"upload": ["true"]}
    patch = next(r for r in configured.requests if r.method == "PATCH")
    assert patch.body == {"commit": True}


def test_failed_push_deletes_the_image_and_exits_1(
    configured: FakeApi, engine: FakeEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_create_flow(configured)
    engine.push_error = "denied: requested access to the resource is denied"
    code, out, err = beaker(capsys, "image", "create", "--name", "hello", "hello")
    assert code == 1
    assert err.splitlines() == [
        "Error: denied: requested access to the resource is denied "
        "(image bp_abcdefghijkl was deleted)"
    ]
    assert "DELETE /api/v3/images/bp_abcdefghijkl" in configured.calls()
    assert "PATCH /api/v3/images/bp_abcdefghijkl" not in configured.calls()
    assert "Done." not in out


def test_create_of_a_missing_local_image_makes_nothing(
    configured: FakeApi, engine: FakeEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = beaker(capsys, "image", "create", "--name", "x", "missing")
    assert code == 1
    assert err == "Error: no Docker image 'missing' in the local engine\n"
    assert configured.calls("POST") == []


def test_create_without_a_docker_engine_is_one_error_line(
    configured: FakeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    code, _, err = beaker(capsys, "image", "create", "--name", "x", "hello")
    assert code == 1
    assert err.startswith("Error: cannot reach the Docker engine at unix://")
    assert len(err.splitlines()) == 1
    assert configured.calls("POST") == []


def test_create_reads_the_narrative_file(
    configured: FakeApi, engine: FakeEngine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    serve_create_flow(configured)
    narrative = tmp_path / "README.md"
    narrative.write_text("# Hello\n")
    code, _, _ = beaker(capsys, "image", "create", "--narrative", str(narrative), "hello")
    assert code == 0
    post = next(r for r in configured.requests if r.method == "POST")
    assert post.body["narrative"] == "# Hello\n"
    assert post.query == {}


def test_inspect_prints_a_json_array(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("GET", "/images/alice%2Fhello", 200, image())
    configured.on("GET", "/images/bp_abcdefghijkl", 200, image())
    code, out, _ = beaker(capsys, "image", "inspect", "alice/hello", "bp_abcdefghijkl")
    assert code == 0
    shown = json.loads(out)
    assert [i["id"] for i in shown] == ["bp_abcdefghijkl", "bp_abcdefghijkl"]


def test_pull_with_a_tag_retags_and_drops_the_internal_tag(
    configured: FakeApi, engine: FakeEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("GET", "/images/alice%2Fhello", 200, image())
    configured.on("GET", "/images/bp_abcdefghijkl/repository", 200, REPO)
    code, out, _ = beaker(capsys, "image", "pull", "alice/hello", "friendly-name")
    assert code == 0
    assert out.splitlines() == [
        "Pulling 127.0.0.1:5000/r1 ...", "latest: Pulling from r1",
        "Tagged friendly-name:latest.", "Done.",
    ]  # fmt: skip
    assert engine.calls == [
        "pull 127.0.0.1:5000/r1",
        "tag 127.0.0.1:5000/r1:latest friendly-name:latest",
        "untag 127.0.0.1:5000/r1:latest",
    ]
    repo_request = next(r for r in configured.requests if r.path.endswith("/repository"))
    assert repo_request.query == {}


def test_pull_with_a_tag_keeps_an_internal_tag_an_earlier_pull_made(
    configured: FakeApi, engine: FakeEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("GET", "/images/alice%2Fhello", 200, image())
    configured.on("GET", "/images/bp_abcdefghijkl/repository", 200, REPO)
    engine.references.add("127.0.0.1:5000/r1:latest")
    assert beaker(capsys, "image", "pull", "alice/hello", "friendly-name:v1")[0] == 0
    assert engine.calls == [
        "pull 127.0.0.1:5000/r1",
        "tag 127.0.0.1:5000/r1:latest friendly-name:v1",
    ]


def test_plain_pull_output_is_the_seeds_and_keeps_the_internal_tag(
    configured: FakeApi, engine: FakeEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("GET", "/images/alice%2Fhello", 200, image())
    configured.on("GET", "/images/bp_abcdefghijkl/repository", 200, REPO)
    _, out, _ = beaker(capsys, "image", "pull", "alice/hello")
    assert out.splitlines() == [
        "Pulling 127.0.0.1:5000/r1 ...", "latest: Pulling from r1", "Done.",
    ]  # fmt: skip
    assert engine.calls == ["pull 127.0.0.1:5000/r1"]


def test_quiet_pull_prints_only_the_tag_it_set(
    configured: FakeApi, engine: FakeEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("GET", "/images/alice%2Fhello", 200, image())
    configured.on("GET", "/images/bp_abcdefghijkl/repository", 200, REPO)
    _, out, _ = beaker(capsys, "-q", "image", "pull", "alice/hello", "friendly-name")
    assert out == "friendly-name:latest\n"


def test_pull_of_an_uncommitted_image_is_refused(
    configured: FakeApi, engine: FakeEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("GET", "/images/bp_x", 200, image("bp_x", committed=None))
    code, _, err = beaker(capsys, "image", "pull", "bp_x")
    assert code == 1
    assert "not committed" in err
    assert engine.calls == []


def test_rename_and_delete_act_on_the_resolved_id(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("GET", "/user", 200, ALICE)
    configured.on("GET", "/images/alice%2Fhello", 200, image())
    configured.on("PATCH", "/images/bp_abcdefghijkl", 200, image(name="bye", fullName="alice/bye"))
    configured.on("DELETE", "/images/bp_abcdefghijkl", 204)
    assert beaker(capsys, "image", "rename", "hello", "bye")[1] == (
        "Renamed alice/hello to alice/bye (bp_abcdefghijkl).\n"
    )
    patch = next(r for r in configured.requests if r.method == "PATCH")
    assert patch.body == {"name": "bye"}
    assert beaker(capsys, "image", "delete", "alice/hello")[0] == 0
    assert "DELETE /api/v3/images/bp_abcdefghijkl" in configured.calls()


def test_list_searches_the_default_workspaces_images(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("GET", "/workspaces/alice%2Fdefault", 200, {"id": "ws_1"})
    configured.on("POST", "/images/search", 200, [image(size=1536)])
    code, out, _ = beaker(capsys, "image", "list")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["ID", "NAME", "AUTHOR", "CREATED", "SIZE", "DESCRIPTION"]
    assert row.split()[:3] == ["bp_abcdefghijkl", "alice/hello", "alice"]
    assert "2024-01-02" in row and "1.5 KiB" in row and row.endswith("says hi")
    search = next(r for r in configured.requests if r.method == "POST")
    assert search.body == {
        "filterClauses": [{"field": "workspace", "operator": "eq", "value": "ws_1"}],
        "sortClauses": [{"field": "created", "order": "descending"}],
    }


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, {"code": 404, "message": "image not found"}, "Error: image 'bp_zzz' not found\n"),
        (401, {"code": 401, "message": "bad token"}, "Error: bad token (check BEAKER_TOKEN"),
        (500, {"code": 500, "message": "boom"}, "Error: boom\n"),
    ],
)
def test_server_errors_are_one_line_and_exit_1(
    configured: FakeApi, capsys: pytest.CaptureFixture[str],
    status: int, body: dict[str, Any], expected: str,
) -> None:  # fmt: skip
    configured.on("GET", "/images/bp_zzz", status, body)
    configured.on("GET", "/user", 200, ALICE)
    code, out, err = beaker(capsys, "image", "inspect", "bp_zzz")
    assert code == 1
    assert out == ""
    assert err.startswith(expected)
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [[], ["image"], ["image", "frobnicate"], ["image", "inspect"], ["config", "set", "nokey", "v"]],
)
def test_bad_arguments_are_one_error_line_and_exit_2(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, out, err = beaker(capsys, *args)
    assert code == 2
    assert out == ""
    assert err.startswith("Error: ")
    assert len(err.splitlines()) == 1


def test_config_set_then_list(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert beaker(capsys, "config", "set", "agent_address", "http://127.0.0.1:9")[0] == 0
    assert beaker(capsys, "config", "set", "user_token", "bk_abcdefghijklmnop")[0] == 0
    _, out, _ = beaker(capsys, "config", "list")
    lines = out.splitlines()
    assert "agent_address = http://127.0.0.1:9" in lines
    assert "default_org = (unset)" in lines
    assert not any("bk_abcdefghijklmnop" in line for line in lines)
    _, out, _ = beaker(capsys, "config", "list", "--show-sensitive")
    assert "user_token = bk_abcdefghijklmnop" in out.splitlines()


def test_whoami_prints_the_account(configured: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    configured.on("GET", "/user", 200, ALICE)
    _, out, _ = beaker(capsys, "account", "whoami", "--format", "json")
    assert json.loads(out) == {"id": "us_alice0000001", "name": "alice", "display_name": "Alice A."}


def test_whoami_shows_storage_used_against_the_quota_when_beakerd_tracks_it(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("GET", "/user", 200, ALICE)
    configured.on("GET", "/user/storage", 200, {"usedBytes": 3 << 20, "quotaBytes": 10 << 30})
    _, out, _ = beaker(capsys, "account", "whoami")
    header, row = out.splitlines()
    assert header.split()[-2:] == ["STORAGE", "QUOTA"]
    assert row.endswith("3.0 MiB   10.0 GiB")


def test_token_create_prints_only_the_secret_on_stdout(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    def created(request: Request) -> tuple[int, object]:
        return 200, {"id": "tk_1", "description": request.body["description"], "token": "bk_new"}

    configured.routes[("POST", "/api/v3/user/tokens")] = created
    code, out, err = beaker(capsys, "account", "token", "create", "--description", "ci")
    assert (code, out) == (0, "bk_new\n")
    assert "tk_1" in err
    configured.on("GET", "/user/tokens", 200, {"data": [{"id": "tk_1", "description": "ci"}]})
    assert "tk_1" in beaker(capsys, "account", "token", "list")[1]
    configured.on("DELETE", "/user/tokens/tk_1", 204)
    assert beaker(capsys, "account", "token", "revoke", "tk_1")[0] == 0


def test_unexpected_exceptions_are_one_line_not_a_traceback(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr("beakerd.beaker_cli.config.load", explode)
    code, _, err = beaker(capsys, "image", "inspect", "x")
    assert code == 1
    assert err == "Error: unexpected RuntimeError: kaboom\n"
