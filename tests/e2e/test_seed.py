"""The seed's walkthrough (shared/seed/beaker-images.md), end to end: the `beaker` CLI against a
real beakerd and a real Docker engine.

The CLI runs as a subprocess with the server's HOME, so it reads the config beakerd wrote on first
start (address, token, default workspace), exactly as a user on that machine would.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.docker_engine import DockerEngine, build_scratch_image, layer_ids
from tests.server import Server, free_port, running_beakerd

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE_ID = re.compile(r"bp_[a-z0-9]{12}")
# Three layers; the second image below shares the first two.
WORDCOUNT_FILES = [
    ("wordcount.txt", b"the quick brown fox jumps over the lazy dog\n" * 50),
    ("words.txt", b"\n".join(b"word%d" % i for i in range(500))),
    ("main.sh", b"#!/bin/sh\nwc -w /wordcount.txt\n"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A beakerd of this module's own, so that the seed's plain names (`wordcount`) are free.

    On SQLite and the data folder; on PostgreSQL and S3 the same tests run through nginx in
    front of three replicas (tests/cluster/test_seed_through_nginx.py)."""
    with running_beakerd(tmp_path_factory.mktemp("seed-beakerd")) as running:
        yield running


@dataclass
class Beaker:
    """Runs `beaker ...` as the server's bootstrap user, against the test's Docker engine."""

    server: Server
    engine: DockerEngine

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BEAKER_")}
        env.update(self.engine.env)
        env["HOME"] = str(self.server.home)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env.update(overrides)
        return env

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "beakerd.beaker_cli", *args],
            env=self.env(**env), capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
        )  # fmt: skip

    def ok(self, *args: str) -> str:
        proc = self.run(*args)
        assert proc.returncode == 0, f"beaker {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"
        assert proc.stderr == "", proc.stderr
        return proc.stdout

    def fails(self, *args: str, **env: str) -> str:
        """The one `Error: ...` line of a failing command (and no traceback)."""
        proc = self.run(*args, **env)
        assert proc.returncode != 0, f"beaker {' '.join(args)} succeeded:\n{proc.stdout}"
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
        return lines[0]

    def inspect(self, *refs: str) -> list[dict[str, Any]]:
        shown: list[dict[str, Any]] = json.loads(self.ok("image", "inspect", *refs))
        return shown

    def api(self, path: str) -> Any:
        request = urllib.request.Request(
            f"{self.server.url}/api/v3{path}",
            headers={"Authorization": f"Bearer {self.server.password}"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())


@pytest.fixture(scope="module")
def beaker(server: Server, dockerd: DockerEngine) -> Beaker:
    return Beaker(server, dockerd)


@dataclass
class Created:
    image_id: str  # the Beaker image ID
    local_id: str  # the Docker image ID it was made from
    output: str


def _nonce() -> bytes:
    return secrets.token_hex(8).encode()


def create(beaker: Beaker, name: str, files: list[tuple[str, bytes]], tmp: Path) -> Created:
    local_id = build_scratch_image(beaker.engine, name, files, tmp / name)
    output = beaker.ok("image", "create", "--name", name, name)
    first = output.splitlines()[0]
    match = re.fullmatch(rf"Pushing {name} as {name} \(({IMAGE_ID.pattern})\)\.\.\.", first)
    assert match, output
    return Created(match.group(1), local_id, output)


@pytest.fixture(scope="module")
def wordcount(beaker: Beaker, tmp_path_factory: pytest.TempPathFactory) -> Created:
    """`docker build -t wordcount` then `beaker image create --name wordcount wordcount`."""
    return create(beaker, "wordcount", WORDCOUNT_FILES, tmp_path_factory.mktemp("wordcount"))


def test_create_prints_the_push_as_the_seed_shows_it(beaker: Beaker, wordcount: Created) -> None:
    lines = wordcount.output.splitlines()
    repository = beaker.api(f"/images/{wordcount.image_id}/repository")["imageTag"]
    assert repository.startswith(beaker.server.address + "/")
    assert lines[1] == f"The push refers to repository [{repository}]"
    layers = layer_ids(beaker.engine, "wordcount")
    assert len(layers) == 3
    for layer in layers:
        assert f"{layer}: Preparing" in lines
        assert f"{layer}: Pushed" in lines
    assert re.fullmatch(r"latest: digest: sha256:[0-9a-f]{64} size: \d+", lines[-2]), lines
    assert lines[-1] == "Done."
    # The temporary push tag is gone again; the user's own tag stays.
    assert not beaker.engine.has_image(f"{repository}:latest")
    assert beaker.engine.image_id("wordcount") == wordcount.local_id


def test_inspect_by_full_name_and_by_id_show_the_same_image(
    beaker: Beaker, wordcount: Created
) -> None:
    by_name = beaker.inspect("tester/wordcount")
    by_id = beaker.inspect(wordcount.image_id)
    assert by_name == by_id
    [shown] = by_name
    assert shown["id"] == wordcount.image_id
    assert shown["user"]["name"] == "tester"
    assert set(shown["user"]) == {"id", "name", "display_name"}
    assert shown["name"] == "wordcount"
    assert shown["original_tag"] == "wordcount"
    assert shown["committed"] >= shown["created"]
    pushed = re.search(r"latest: digest: (sha256:[0-9a-f]{64}) size: (\d+)", wordcount.output)
    assert pushed
    assert shown["digest"] == pushed.group(1)


def test_inspect_output_keeps_the_seeds_key_order(beaker: Beaker, wordcount: Created) -> None:
    [shown] = beaker.inspect(wordcount.image_id)
    seed_order = ["id", "user", "name", "created", "committed", "original_tag", "description"]
    present = [key for key in shown if key in seed_order]
    assert present == [key for key in seed_order if key in shown]
    assert present[:6] == seed_order[:6]


def test_bare_name_resolves_to_the_callers_own_image(beaker: Beaker, wordcount: Created) -> None:
    [shown] = beaker.inspect("wordcount")
    assert shown["id"] == wordcount.image_id


def test_second_image_sharing_layers_reports_them_already_there(
    beaker: Beaker, wordcount: Created, tmp_path: Path
) -> None:
    files = [*WORDCOUNT_FILES[:2], ("main.sh", b"#!/bin/sh\nwc -l /wordcount.txt\n")]
    second = create(beaker, "wordcount-lines", files, tmp_path)
    lines = second.output.splitlines()
    shared, own = (
        layer_ids(beaker.engine, "wordcount")[:2],
        layer_ids(beaker.engine, "wordcount-lines")[2],
    )
    for layer in shared:
        assert f"{layer}: Layer already exists" in lines, second.output
    assert f"{own}: Pushed" in lines, second.output
    assert lines[-1] == "Done."


def test_duplicate_name_is_refused_without_a_new_image(beaker: Beaker, wordcount: Created) -> None:
    before = len(beaker.api("/workspaces/tester%2Fdefault/images?cursor=AAAAAAAAAAA=")["data"])
    error = beaker.fails("image", "create", "--name", "wordcount", "wordcount")
    assert "already exists" in error
    after = len(beaker.api("/workspaces/tester%2Fdefault/images?cursor=AAAAAAAAAAA=")["data"])
    assert after == before


def test_list_shows_the_image_in_the_default_workspace(beaker: Beaker, wordcount: Created) -> None:
    rows = [line.split() for line in beaker.ok("image", "list").splitlines()]
    assert rows[0][:2] == ["ID", "NAME"]
    assert [wordcount.image_id, "tester/wordcount", "tester"] in [row[:3] for row in rows]


def test_pull_keeps_beakers_internal_tag(beaker: Beaker, tmp_path: Path) -> None:
    # Content of this run's own: an image another run left in the engine must not stand in.
    image = create(beaker, "pull-plain", [("a.txt", b"pull me plainly\n" + _nonce())], tmp_path)
    beaker.engine.cli("image", "rm", "pull-plain")
    assert not beaker.engine.has_image(image.local_id)
    repository = beaker.api(f"/images/{image.image_id}/repository")["imageTag"]
    out = beaker.ok("image", "pull", "tester/pull-plain").splitlines()
    assert out[0] == f"Pulling {repository} ..."
    assert out[1] == f"latest: Pulling from {repository.split('/', 1)[1]}"
    assert any(re.fullmatch(r"Digest: sha256:[0-9a-f]{64}", line) for line in out), out
    assert f"Status: Downloaded newer image for {repository}:latest" in out
    assert out[-1] == "Done."
    assert beaker.engine.image_id(f"{repository}:latest") == image.local_id


def test_pull_with_a_friendly_tag_replaces_the_internal_one(beaker: Beaker, tmp_path: Path) -> None:
    files = [("b.txt", b"pull me by a friendly name\n" + _nonce())]
    image = create(beaker, "pull-friendly", files, tmp_path)
    beaker.engine.cli("image", "rm", "pull-friendly")
    repository = beaker.api(f"/images/{image.image_id}/repository")["imageTag"]
    out = beaker.ok("image", "pull", "tester/pull-friendly", "friendly-name")
    assert out.splitlines()[-1] == "Done."
    assert beaker.engine.image_id("friendly-name") == image.local_id
    assert not beaker.engine.has_image(f"{repository}:latest")


def test_rename_keeps_the_id(beaker: Beaker, tmp_path: Path) -> None:
    image = create(beaker, "before-rename", [("c.txt", b"rename me\n")], tmp_path)
    out = beaker.ok("image", "rename", "tester/before-rename", "after-rename")
    assert out == f"Renamed tester/before-rename to tester/after-rename ({image.image_id}).\n"
    [shown] = beaker.inspect("tester/after-rename")
    assert (shown["id"], shown["name"]) == (image.image_id, "after-rename")
    assert beaker.fails("image", "inspect", "tester/before-rename") == (
        "Error: image 'tester/before-rename' not found"
    )


def test_delete_removes_the_image(beaker: Beaker, tmp_path: Path) -> None:
    image = create(beaker, "delete-me", [("d.txt", b"delete me\n")], tmp_path)
    assert beaker.ok("image", "delete", "tester/delete-me") == (
        f"Deleted tester/delete-me ({image.image_id}).\n"
    )
    assert beaker.fails("image", "inspect", image.image_id) == (
        f"Error: image {image.image_id!r} not found"
    )
    assert "not found" in beaker.fails("image", "pull", "tester/delete-me")


def _docker_push_with(beaker: Beaker, repo: dict[str, Any], tag_source: str) -> str:
    """Log in with an ImageRepo's credentials, push `tag_source` over its image; the output."""
    engine = beaker.engine
    auth = repo["auth"]
    target = f"{repo['imageTag']}:latest"
    engine.cli("login", "-u", auth["user"], "--password-stdin", auth["server_address"],
               input_text=auth["password"])  # fmt: skip
    try:
        engine.cli("tag", tag_source, target)
        proc = engine.cli("push", target, check=False)
        assert proc.returncode != 0, f"push into a committed image succeeded:\n{proc.stdout}"
        engine.cli("image", "rm", target)
        return proc.stdout
    finally:
        engine.cli("logout", auth["server_address"], check=False)


def test_committed_image_refuses_further_pushes(
    beaker: Beaker, wordcount: Created, tmp_path: Path
) -> None:
    build_scratch_image(beaker.engine, "intruder", [("x.txt", b"not wordcount\n")], tmp_path)
    [before] = beaker.inspect(wordcount.image_id)
    pull_repo = beaker.api(f"/images/{wordcount.image_id}/repository")
    _docker_push_with(beaker, pull_repo, "intruder")
    # Fresh upload credentials for a committed image: refused outright, or useless for pushing.
    request = urllib.request.Request(
        f"{beaker.server.url}/api/v3/images/{wordcount.image_id}/repository?upload=true",
        headers={"Authorization": f"Bearer {beaker.server.password}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            upload_repo = json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        assert refused.code in (400, 403, 409), refused.code
    else:
        _docker_push_with(beaker, upload_repo, "intruder")
    [after] = beaker.inspect(wordcount.image_id)
    assert after == before
    # And what one pulls is still wordcount.
    beaker.ok("image", "pull", wordcount.image_id, "wordcount-again")
    assert beaker.engine.image_id("wordcount-again") == wordcount.local_id


def test_failures_are_one_error_line(beaker: Beaker, wordcount: Created, tmp_path: Path) -> None:
    assert beaker.fails("image", "inspect", "tester/nope") == "Error: image 'tester/nope' not found"
    assert "token" in beaker.fails("account", "whoami", BEAKER_TOKEN="bk_wrong")
    unreachable = f"http://127.0.0.1:{free_port()}"
    assert "cannot reach Beaker" in beaker.fails("image", "list", BEAKER_ADDR=unreachable)
    no_engine = f"unix://{tmp_path}/no-docker.sock"
    error = beaker.fails("image", "create", "--name", "x", "wordcount", DOCKER_HOST=no_engine)
    assert "cannot reach the Docker engine" in error
    assert "no Docker image" in beaker.fails("image", "create", "--name", "y", "no-such-image")
    assert beaker.fails("image", "frobnicate").startswith("Error: argument COMMAND: invalid")


def test_whoami_names_the_bootstrap_account(beaker: Beaker) -> None:
    rows = [line.split() for line in beaker.ok("account", "whoami").splitlines()]
    assert rows[1][1] == "tester"
