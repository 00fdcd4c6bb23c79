"""Image commands beyond the seed's: commit, get, update, --no-commit, output modes, listing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from beakerd.beaker_cli.output import relative_time
from tests.cli.fake_api import ALICE, FakeApi, Request, image
from tests.cli.test_cli import FakeEngine, beaker, configured, engine, serve_create_flow

__all__ = ["configured", "engine"]  # fixtures shared with test_cli


def test_version_is_printed_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        beaker(capsys, "--version")
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("beaker ")


def test_quiet_and_json_together_are_a_usage_error(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = beaker(capsys, "-q", "--format", "json", "account", "whoami")
    assert code == 2 and "cannot be used together" in err


@pytest.mark.parametrize(
    "args", [["--format", "json", "account", "whoami"], ["account", "whoami", "--format", "json"]]
)
def test_format_json_works_before_or_after_the_command(
    configured: FakeApi, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    configured.on("GET", "/user", 200, ALICE)
    assert json.loads(beaker(capsys, *args)[1])["name"] == "alice"


def test_quiet_whoami_prints_the_account_name(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("GET", "/user", 200, ALICE)
    assert beaker(capsys, "account", "whoami", "-q")[1] == "alice\n"


def test_quiet_create_prints_only_the_image_id(
    configured: FakeApi, engine: FakeEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_create_flow(configured)
    code, out, _ = beaker(capsys, "image", "create", "-q", "--name", "hello", "hello")
    assert (code, out) == (0, "bp_abcdefghijkl\n")


def test_json_create_prints_the_committed_image_and_no_progress(
    configured: FakeApi, engine: FakeEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_create_flow(configured)
    _, out, _ = beaker(capsys, "--format", "json", "image", "create", "hello")
    assert json.loads(out)["committed"] == "2024-01-02T03:04:09Z"


def test_no_commit_pushes_but_leaves_the_image_uncommitted(
    configured: FakeApi, engine: FakeEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_create_flow(configured)
    code, out, _ = beaker(capsys, "image", "create", "--no-commit", "-n", "hello", "hello")
    assert code == 0
    assert "PATCH /api/v3/images/bp_abcdefghijkl" not in configured.calls()
    assert "beaker image commit bp_abcdefghijkl" in out
    assert "push 127.0.0.1:5000/r1 as alice" in engine.calls


def test_commit_patches_commit_true(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("GET", "/images/bp_abcdefghijkl", 200, image(committed=None))
    configured.on("PATCH", "/images/bp_abcdefghijkl", 200, image())
    code, out, _ = beaker(capsys, "image", "commit", "bp_abcdefghijkl")
    assert (code, out) == (0, "Committed alice/hello (bp_abcdefghijkl).\n")
    assert configured.requests[-1].body == {"commit": True}


def test_get_is_inspect_and_table_format_is_a_table(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("GET", "/images/bp_abcdefghijkl", 200, image())
    assert json.loads(beaker(capsys, "image", "get", "bp_abcdefghijkl")[1])[0]["name"] == "hello"
    out = beaker(capsys, "image", "get", "bp_abcdefghijkl", "--format", "table")[1]
    assert out.splitlines()[0].startswith("ID")


def test_a_bare_name_resolves_to_ones_own_image(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("GET", "/images/hello", 404, {"code": 404, "message": "not found"})
    configured.on("GET", "/user", 200, ALICE)
    configured.on("GET", "/images/alice%2Fhello", 200, image())
    assert beaker(capsys, "image", "inspect", "hello", "-q")[1] == "bp_abcdefghijkl\n"


def test_update_sends_description_and_narrative(
    configured: FakeApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    configured.on("GET", "/images/bp_abcdefghijkl", 200, image())
    configured.on("PATCH", "/images/bp_abcdefghijkl", 200, image(description="new"))
    narrative = tmp_path / "n.md"
    narrative.write_text("# New\n")
    beaker(capsys, "image", "update", "bp_abcdefghijkl", "--narrative", str(narrative))
    assert configured.requests[-1].body == {"narrative": "# New\n"}
    code, out, _ = beaker(capsys, "image", "update", "bp_abcdefghijkl", "--description", "new")
    assert (code, out) == (0, "Updated alice/hello (bp_abcdefghijkl).\n")
    assert configured.requests[-1].body == {"description": "new"}


def test_update_with_nothing_to_change_is_a_usage_error(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = beaker(capsys, "image", "update", "bp_abcdefghijkl")
    assert code == 2 and "nothing to update" in err


def test_rename_onto_a_taken_name_says_already_exists(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("GET", "/images/bp_abcdefghijkl", 200, image())
    message = {"code": 409, "message": "image name alice/bye is already in use"}
    configured.on("PATCH", "/images/bp_abcdefghijkl", 409, message)
    code, _, err = beaker(capsys, "image", "rename", "bp_abcdefghijkl", "bye")
    assert (code, err) == (1, "Error: an image named 'bye' already exists\n")


def test_list_sends_author_text_and_name_sort_clauses(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.on("GET", "/workspaces/alice%2Fdefault", 200, {"id": "ws_1"})
    configured.on("POST", "/images/search", 200, [image(committed=None)])
    code, out, _ = beaker(
        capsys, "image", "list", "--author", "alice", "--text", "hel", "--sort", "name"
    )
    assert code == 0 and "uncommitted" in out
    search = configured.requests[-1]
    assert search.query["page"] == ["0"]
    assert search.body["filterClauses"][1:] == [
        {"field": "author", "operator": "eq", "value": "alice"},
        {"field": "name", "operator": "ctn", "value": "hel"},
    ]
    assert search.body["sortClauses"] == [{"field": "name", "order": "ascending"}]


def test_list_follows_pages_until_a_short_one(
    configured: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    def paged(request: Request) -> tuple[int, object]:
        page = int(request.query["page"][0])
        count = int(request.query["limit"][0]) if page == 0 else 1
        return 200, [image(f"bp_{page}_{i:010d}", name=f"n{page}{i}") for i in range(count)]

    configured.on("GET", "/workspaces/alice%2Fdefault", 200, {"id": "ws_1"})
    configured.routes[("POST", "/api/v3/images/search")] = paged
    out = beaker(capsys, "image", "list", "-q")[1]
    assert len(out.splitlines()) == 101


@pytest.mark.parametrize(
    ("when", "shown"),
    [
        ("2024-01-02T03:04:00Z", "just now"),
        ("2024-01-02T03:03:05Z", "1m ago"),
        ("2024-01-02T00:04:05Z", "3h ago"),
        ("2023-12-30T03:04:05Z", "3d ago"),
        ("2023-10-01T03:04:05Z", "2023-10-01"),
        ("not a time", "not a time"),
    ],
)
def test_relative_times_are_short(when: str, shown: str) -> None:
    now = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert relative_time(when, now) == shown
