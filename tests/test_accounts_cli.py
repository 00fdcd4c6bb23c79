"""`beakerd account` and `beakerd token` against the data folder of a running server."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.server import Server


def beakerd(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "beakerd", "--data-dir", str(server.data_dir), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def status_of(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return e.code


def registry_token(server: Server, user: str, secret: str, scope: str) -> str:
    login = base64.b64encode(f"{user}:{secret}".encode()).decode()
    request = urllib.request.Request(
        f"{server.url}/v2/token?service=beakerd&scope={scope}",
        headers={"Authorization": f"Basic {login}"},
    )
    with urllib.request.urlopen(request) as resp:
        return str(json.load(resp)["token"])


def test_added_account_logs_in_and_revoking_its_token_locks_it_out_at_once(
    fresh_beakerd: Server,
) -> None:
    added = beakerd(fresh_beakerd, "account", "add", "bob")
    assert added.returncode == 0, added.stderr
    secret = added.stdout.split("API token: ")[1].split()[0]
    token = registry_token(fresh_beakerd, "bob", secret, "repository:bob/app:pull,push")
    bearer = {"Authorization": f"Bearer {token}"}
    assert status_of(f"{fresh_beakerd.url}/v2/bob/app/tags/list", bearer) == 404  # allowed
    # Docker's token spec: a token lacking the scope is 401 insufficient_scope.
    assert status_of(f"{fresh_beakerd.url}/v2/tester/app/tags/list", bearer) == 401

    listed = beakerd(fresh_beakerd, "token", "list", "bob")
    token_id = listed.stdout.split()[0]
    revoked = beakerd(fresh_beakerd, "token", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    assert status_of(f"{fresh_beakerd.url}/v2/bob/app/tags/list", bearer) == 401


def test_duplicate_account_and_unknown_token_fail_with_one_line(fresh_beakerd: Server) -> None:
    again = beakerd(fresh_beakerd, "account", "add", "tester")
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0 and "already exists" in again.stderr
    unknown = beakerd(fresh_beakerd, "token", "revoke", "tk_nothing")
    assert unknown.returncode == 1
    assert "Traceback" not in unknown.stderr


def beaker(
    server: Server, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(server.home)}
    if token is not None:
        env["BEAKER_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "beakerd.beaker_cli", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


def test_beaker_account_token_create_list_revoke_against_the_server(fresh_beakerd: Server) -> None:
    created = beaker(fresh_beakerd, "account", "token", "create", "--description", "laptop")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.split()[0]
    assert beaker(fresh_beakerd, "account", "whoami", token=secret).returncode == 0
    listed = beaker(fresh_beakerd, "account", "token", "list")
    row = next(line for line in listed.stdout.splitlines() if "laptop" in line)
    revoked = beaker(fresh_beakerd, "account", "token", "revoke", row.split()[0])
    assert revoked.returncode == 0, revoked.stderr
    refused = beaker(fresh_beakerd, "account", "whoami", token=secret)
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: ") and "Traceback" not in refused.stderr


def run_beakerd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "beakerd", *args], capture_output=True, text=True, timeout=60
    )


def test_shared_options_work_after_nested_subcommands(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    added = run_beakerd("account", "add", "bob", "--data-dir", data, "--log-level", "warning")
    assert added.returncode == 0, added.stderr
    listed = run_beakerd("token", "list", "bob", "--log-format", "json", "--data-dir", data)
    assert listed.returncode == 0, listed.stderr
    assert "\tbob\t" in listed.stdout
    # In the middle too, and a level that does not repeat an option keeps the other's value.
    middle = run_beakerd("--data-dir", data, "token", "--log-level", "error", "list")
    assert "\tbob\t" in middle.stdout, middle.stderr


def test_later_shared_option_wins_and_an_absent_one_resets_nothing(tmp_path: Path) -> None:
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    run_beakerd("--data-dir", first, "account", "add", "alice")
    assert (tmp_path / "first" / "beakerd.db").exists()
    run_beakerd("--data-dir", first, "account", "add", "carol", "--data-dir", second)
    again = run_beakerd("token", "list", "--data-dir", second)
    assert "\tcarol\t" in again.stdout and "alice" not in again.stdout, again.stderr


def test_config_file_is_accepted_after_the_subcommand(tmp_path: Path) -> None:
    config = tmp_path / "beakerd.yml"
    config.write_text(f"data_dir: {tmp_path / 'configured'}\n")
    added = run_beakerd("account", "add", "dora", "--config", str(config))
    assert added.returncode == 0, added.stderr
    assert (tmp_path / "configured" / "beakerd.db").exists()
