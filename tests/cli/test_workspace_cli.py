"""`beaker workspace ...` against the fake API: the requests each command sends and what it says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from beakerd.beaker_cli import cli
from tests.cli.fake_api import ALICE, FakeApi, Request, image

WS: dict[str, Any] = {
    "id": "ws_1", "name": "project", "fullName": "alice/project", "description": "d",
    "author": ALICE, "created": "2024-01-02T03:04:05Z", "archived": False, "public": False,
    "size": {"images": 2},
}  # fmt: skip


@pytest.fixture
def configured(home: Path, fake_api: FakeApi) -> FakeApi:
    config = home / ".beaker" / "config.yml"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump({"agent_address": fake_api.url, "user_token": "bk_t"}))
    fake_api.on("GET", "/user", 200, ALICE)
    fake_api.on("GET", "/workspaces/alice%2Fproject", 200, WS)
    fake_api.on("GET", "/workspaces/ws_1", 200, WS)
    return fake_api


def beaker(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def body_of(api: FakeApi, method: str) -> Any:
    return next(r for r in api.requests if r.method == method).body


def test_create_posts_name_org_and_visibility(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("POST", "/workspaces", 200, WS)
    code, out, _ = beaker(capsys, "workspace", "create", "project", "-o", "alice", "--public")
    assert (code, out) == (0, "Workspace alice/project created (ws_1).\n")
    assert body_of(configured, "POST") == {"name": "project", "org": "alice", "public": True}


def test_create_of_a_taken_name_says_already_exists(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    message = {"code": 409, "message": "workspace name alice/project is already in use"}
    configured.on("POST", "/workspaces", 409, message)
    code, _, err = beaker(capsys, "workspace", "create", "alice/project")
    assert code == 1
    assert err == "Error: a workspace named 'alice/project' already exists\n"
    # A bare name is one's own org's, and the message says so.
    assert beaker(capsys, "workspace", "create", "project")[2] == err


def test_get_prints_json_and_a_bare_name_is_one_of_ones_own(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = beaker(capsys, "workspace", "get", "project")
    assert code == 0
    shown = json.loads(out)
    assert shown[0]["full_name"] == "alice/project" and shown[0]["images"] == 2
    assert "GET /api/v3/workspaces/alice%2Fproject" in configured.calls()


def test_list_is_a_table_and_quiet_lists_only_ids(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("GET", "/workspaces", 200, {"data": [WS]})
    _, out, _ = beaker(capsys, "workspace", "list", "alice")
    header, row = out.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "IMAGES", "VISIBILITY"]
    assert row.split()[:4] == ["ws_1", "alice/project", "2", "private"]
    assert configured.requests[-1].query["org"] == ["alice"]
    assert beaker(capsys, "workspace", "list", "-q")[1] == "ws_1\n"


def test_images_searches_within_the_workspace(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("POST", "/images/search", 200, [image()])
    _, out, _ = beaker(capsys, "workspace", "images", "alice/project", "--text", "hel")
    assert "alice/hello" in out
    assert body_of(configured, "POST")["filterClauses"] == [
        {"field": "workspace", "operator": "eq", "value": "ws_1"},
        {"field": "name", "operator": "ctn", "value": "hel"},
    ]


def test_move_resolves_each_image_then_transfers_their_ids(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("GET", "/images/bp_1", 200, image("bp_1"))
    configured.on("GET", "/images/hello", 404, {"code": 404, "message": "nope"})
    configured.on("GET", "/images/alice%2Fhello", 200, image("bp_2"))
    configured.on("POST", "/workspaces/ws_1/transfer", 204)
    code, out, _ = beaker(capsys, "workspace", "move", "alice/project", "bp_1", "hello")
    assert (code, out) == (0, "Moved 2 images into workspace alice/project.\n")
    assert body_of(configured, "POST") == {"ids": ["bp_1", "bp_2"]}


def test_set_visibility_patches_auth_as_beaker_py_does(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("PATCH", "/workspaces/ws_1/auth", 200, {"requesterAuth": "all", "public": True})
    code, out, _ = beaker(capsys, "workspace", "set-visibility", "alice/project", "public")
    assert (code, out) == (0, "Workspace alice/project is now public.\n")
    assert body_of(configured, "PATCH") == {"public": True}
    assert beaker(capsys, "workspace", "set-visibility", "alice/project", "hidden")[0] == 2


def test_rename_and_archive_patch_the_workspace(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    def patched(request: Request) -> tuple[int, Any]:
        return 200, {**WS, "name": request.body.get("name", "project"),
                     "fullName": "alice/" + request.body.get("name", "project"),
                     "archived": bool(request.body.get("archive"))}  # fmt: skip

    configured.routes[("PATCH", "/api/v3/workspaces/ws_1")] = patched
    assert beaker(capsys, "workspace", "rename", "alice/project", "paper")[1] == (
        "Renamed workspace alice/project to alice/paper.\n"
    )
    assert beaker(capsys, "workspace", "archive", "alice/project")[1] == (
        "Workspace alice/project archived.\n"
    )
    bodies = [r.body for r in configured.requests if r.method == "PATCH"]
    assert bodies == [{"name": "paper"}, {"archive": True}]
    code, _, err = beaker(capsys, "workspace", "rename", "alice/project", "bob/paper")
    assert code == 2 and "without ORG/" in err


def test_json_output_of_a_change_is_the_workspace(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("PATCH", "/workspaces/ws_1", 200, {**WS, "archived": True})
    _, out, _ = beaker(capsys, "--format", "json", "workspace", "archive", "alice/project")
    assert json.loads(out)["archived"] is True
