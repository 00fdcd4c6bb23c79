"""The HTTP side: how refs travel, how names resolve, and how error answers become messages."""

from __future__ import annotations

import pytest

from beakerd.beaker_cli.api import BeakerApi, Conflict, NotFound, Unauthorized, encode_ref
from beakerd.beaker_cli.errors import CliError
from beakerd.beaker_cli.models import Image
from tests.cli.fake_api import ALICE, FakeApi, Request, image
from tests.server import free_port


def client(api: FakeApi) -> BeakerApi:
    return BeakerApi(api.url + "/api/v3", "bk_secret")


@pytest.mark.parametrize(
    ("ref", "encoded"),
    [("bp_abc", "bp_abc"), ("alice/hello", "alice%2Fhello"), ("a b", "a%20b")],
)
def test_refs_travel_as_one_encoded_segment(ref: str, encoded: str) -> None:
    assert encode_ref(ref) == encoded


def test_full_name_is_sent_with_an_encoded_slash(fake_api: FakeApi) -> None:
    fake_api.on("GET", "/images/alice%2Fhello", 200, image())
    assert client(fake_api).get_image("alice/hello").id == "bp_abcdefghijkl"


def test_every_request_carries_the_token_and_json_content_type(fake_api: FakeApi) -> None:
    fake_api.on("GET", "/user", 200, ALICE)
    client(fake_api).whoami()
    headers = fake_api.requests[0].headers
    assert headers["Authorization"] == "Bearer bk_secret"
    assert headers["Content-Type"] == "application/json"


def test_bare_name_falls_back_to_the_callers_own_image(fake_api: FakeApi) -> None:
    fake_api.on("GET", "/user", 200, ALICE)
    fake_api.on("GET", "/images/alice%2Fhello", 200, image())
    assert client(fake_api).resolve_image("hello").name == "hello"
    assert fake_api.calls() == [
        "GET /api/v3/images/hello", "GET /api/v3/user", "GET /api/v3/images/alice%2Fhello",
    ]  # fmt: skip


def test_unknown_image_is_not_found_with_the_ref_in_the_message(fake_api: FakeApi) -> None:
    fake_api.on("GET", "/user", 200, ALICE)
    with pytest.raises(NotFound, match="image 'nope' not found"):
        client(fake_api).resolve_image("nope")


def test_create_sends_the_py1_body_and_the_name_in_the_query(fake_api: FakeApi) -> None:
    fake_api.on("POST", "/images", 200, image(committed=None))
    created = client(fake_api).create_image(
        name="hello", workspace_id="ws_1", image_id="sha256:abc", image_tag="hello",
        description="says hi", narrative=None,
    )  # fmt: skip
    assert created.committed is None
    sent = fake_api.requests[0]
    assert sent.query == {"name": ["hello"]}
    assert sent.body == {
        "imageID": "sha256:abc", "imageTag": "hello", "workspace": "ws_1",
        "description": "says hi",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("status", "message"), [(409, "image name taken"), (400, "name is already in use")]
)
def test_conflicts_are_recognised(fake_api: FakeApi, status: int, message: str) -> None:
    fake_api.on("POST", "/images", status, {"code": status, "message": message})
    with pytest.raises(Conflict, match="already exists"):
        client(fake_api).create_image(
            name="hello", workspace_id=None, image_id="sha256:abc", image_tag="hello",
            description=None, narrative=None,
        )  # fmt: skip


def test_bad_token_says_where_the_token_comes_from(fake_api: FakeApi) -> None:
    fake_api.on("GET", "/user", 401, {"code": 401, "message": "invalid token"})
    with pytest.raises(Unauthorized, match=r"invalid token \(check BEAKER_TOKEN"):
        client(fake_api).whoami()


def test_error_without_json_body_still_gives_a_message(fake_api: FakeApi) -> None:
    fake_api.on("GET", "/user", 502, b"Bad gateway\nmore")
    with pytest.raises(CliError, match=r"^Bad gateway$"):
        client(fake_api).whoami()


def test_malformed_answer_is_a_clear_error(fake_api: FakeApi) -> None:
    fake_api.on("GET", "/images/bp_x", 200, {"name": "no id"})
    with pytest.raises(CliError, match="malformed image: id"):
        client(fake_api).get_image("bp_x")


def test_unreachable_server_is_a_clear_error() -> None:
    api = BeakerApi(f"http://127.0.0.1:{free_port()}/api/v3", "t")
    with pytest.raises(CliError, match="cannot reach Beaker"):
        api.whoami()


def test_workspace_listing_follows_cursors_from_the_first_page(fake_api: FakeApi) -> None:
    def page(request: Request) -> tuple[int, object]:
        cursor = request.query["cursor"][0]
        if cursor == "AAAAAAAAAAA=":
            return 200, {"data": [image("bp_1", "one")], "nextCursor": "next"}
        return 200, {"data": [image("bp_2", "two")]}

    fake_api.routes[("GET", "/api/v3/workspaces/ws_1/images")] = page
    images: list[Image] = list(client(fake_api).workspace_images("ws_1"))
    assert [i.id for i in images] == ["bp_1", "bp_2"]
