"""What the CLI prints: the seed's inspect JSON, docker-like progress lines, tables."""

from __future__ import annotations

import json
from typing import Any

import pytest

from beakerd.beaker_cli.commands.image import split_tag
from beakerd.beaker_cli.docker_engine import follow, progress_line
from beakerd.beaker_cli.errors import CliError
from beakerd.beaker_cli.models import Image
from beakerd.beaker_cli.output import image_json, table, to_json
from tests.cli.fake_api import image


def test_inspect_json_has_the_seeds_keys_in_the_seeds_order_then_the_workspace() -> None:
    shown = image_json(Image.model_validate(image()))
    assert list(shown) == [
        "id", "user", "name", "created", "committed", "original_tag", "description", "workspace",
    ]  # fmt: skip
    assert shown["workspace"] == "alice/default"
    assert shown["user"] == {"id": "us_alice0000001", "name": "alice", "display_name": "Alice A."}
    assert shown["original_tag"] == "hello"


def test_inspect_json_adds_narrative_digest_and_size_when_present() -> None:
    data = image(narrative="# Hi", digest="sha256:" + "a" * 64, size=940)
    shown = image_json(Image.model_validate(data))
    assert list(shown)[-4:] == ["narrative", "digest", "size", "workspace"]
    assert shown["size"] == 940


@pytest.mark.parametrize("committed", [None, "0001-01-01T00:00:00Z"])
def test_uncommitted_image_shows_no_committed_time(committed: str | None) -> None:
    data = image(committed=committed)
    assert "committed" not in image_json(Image.model_validate(data))


def test_inspect_output_is_a_four_space_indented_array() -> None:
    text = to_json([image_json(Image.model_validate(image()))])
    assert text.startswith('[\n    {\n        "id": "bp_abcdefghijkl",')
    assert json.loads(text)[0]["name"] == "hello"


@pytest.mark.parametrize(
    ("message", "line"),
    [
        ({"status": "The push refers to repository [127.0.0.1:5/r]"},
         "The push refers to repository [127.0.0.1:5/r]"),
        ({"status": "Preparing", "progressDetail": {}, "id": "172b7a93847f"},
         "172b7a93847f: Preparing"),
        ({"status": "Layer already exists", "progressDetail": {}, "id": "3a1dff9afffd"},
         "3a1dff9afffd: Layer already exists"),
        ({"status": "Pushing", "progressDetail": {"current": 512, "total": 940},
          "progress": "[=====>    ]", "id": "172b7a93847f"}, None),
        ({"progressDetail": {}, "aux": {"Tag": "latest", "Digest": "sha256:x", "Size": 940}},
         None),
        ({"status": "latest: digest: sha256:4c70 size: 940"},
         "latest: digest: sha256:4c70 size: 940"),
        ({"status": "Pulling from r", "id": "latest"}, "latest: Pulling from r"),
    ],
)  # fmt: skip
def test_progress_lines_match_docker_off_a_terminal(message: dict[str, object], line: str) -> None:
    assert progress_line(message) == line


def test_an_error_entry_in_the_stream_stops_with_its_message() -> None:
    shown: list[Any] = []
    stream: list[dict[str, Any]] = [
        {"status": "Preparing", "id": "abc"},
        {"errorDetail": {"message": "denied: repository is read-only"}, "error": "denied"},
        {"status": "never reached"},
    ]
    with pytest.raises(CliError, match="denied: repository is read-only"):
        follow(stream, shown.append)
    assert shown == [{"status": "Preparing", "id": "abc"}]


@pytest.mark.parametrize(
    ("reference", "parts"),
    [
        ("friendly", ("friendly", "latest")),
        ("friendly:v2", ("friendly", "v2")),
        ("127.0.0.1:5000/repo", ("127.0.0.1:5000/repo", "latest")),
        ("127.0.0.1:5000/repo:v1", ("127.0.0.1:5000/repo", "v1")),
    ],
)
def test_split_tag_minds_registry_ports(reference: str, parts: tuple[str, str]) -> None:
    assert split_tag(reference) == parts


def test_table_pads_columns_without_trailing_spaces() -> None:
    text = table(("ID", "NAME"), [["bp_1", "alice/a"], ["bp_22", ""]])
    assert text.splitlines() == ["ID      NAME", "bp_1    alice/a", "bp_22"]
