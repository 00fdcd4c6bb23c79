"""`beakerd account add|list|disable|promote` and `beakerd --version`, on a data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from beakerd import cli


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BEAKERD_PUBLIC_ADDRESS", "images.example:5000")
    return tmp_path / "data"


def beakerd(capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str) -> tuple[int, str]:
    code = cli.main(["--data-dir", str(data_dir), *args])
    out, err = capsys.readouterr()
    return code, out + err


def test_add_names_the_workspace_it_made_and_the_real_registry_address(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    code, out = beakerd(capsys, data_dir, "account", "add", "bob")
    assert code == 0
    lines = out.splitlines()
    assert lines[1].startswith("created workspace bob/default (ws_")
    secret = lines[2].removeprefix("API token: ")
    assert lines[3] == f"log in with: docker login images.example:5000 -u bob -p {secret}"


def test_list_shows_roles_and_disable_revokes_every_token(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    beakerd(capsys, data_dir, "account", "add", "bob")
    beakerd(capsys, data_dir, "token", "create", "bob")
    code, out = beakerd(capsys, data_dir, "account", "disable", "bob")
    assert (code, out) == (0, "disabled bob: revoked 2 tokens\n")
    rows = [
        line.split("\t") for line in beakerd(capsys, data_dir, "account", "list")[1].splitlines()
    ]
    assert [row[1:4] for row in rows] == [["bob", "user", "disabled"]]


def test_promote_makes_an_admin_and_revoke_takes_it_back(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    beakerd(capsys, data_dir, "account", "add", "bob")
    assert beakerd(capsys, data_dir, "account", "promote", "bob")[1] == "bob is now an admin\n"
    assert "\tadmin\tactive\t" in beakerd(capsys, data_dir, "account", "list")[1]
    out = beakerd(capsys, data_dir, "account", "promote", "bob", "--revoke")[1]
    assert out == "bob is no longer an admin\n"


def test_unknown_accounts_are_one_error_line(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    code, out = beakerd(capsys, data_dir, "account", "promote", "nobody")
    assert (code, out) == (1, "beakerd: account 'nobody' not found\n")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("beakerd ")
