"""Policies and webhooks in the configuration file; `beakerd account quota` and `policy`."""

from __future__ import annotations

from pathlib import Path

import pytest

from beakerd import cli
from beakerd.settings import ConfigError, load_settings

CONFIG = """
quota_bytes: 10G
policies:
  - repositories: "alice/*"
    immutable_tags: ["v*"]
    tags: "dev-*"
    keep_newest: 5
    untagged_older_than: 7d
webhooks:
  - url: http://127.0.0.1:9/hook
    secret: s3cr3t
    events: [push, quota_exceeded]
"""


def test_policies_and_webhooks_come_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "beakerd.yaml"
    config.write_text(CONFIG)
    settings = load_settings({}, config)
    assert settings.quota_bytes == 10 << 30
    policy = settings.policies[0].policy()
    assert (policy.immutable_tags, policy.keep_newest, policy.untagged_older_than) == (
        ("v*",),
        5,
        7 * 86400,
    )
    endpoint = settings.webhooks[0].endpoint()
    assert endpoint.events == {"push", "quota_exceeded"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("policies: [{repositories: 'a/*', tags_older_than: soon}]", "is not a duration"),
        ("policies: [{repositories: 'a/[ab]'}]", "the wildcards * and ? only"),
        ("webhooks: [{url: 'http://h/', secret: s, events: [build]}]", "invalid webhooks.0"),
        ("quota_bytes: lots", "is not a size"),
    ],
)
def test_a_bad_policy_or_webhook_is_one_line(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "beakerd.yaml"
    config.write_text(content)
    with pytest.raises(ConfigError) as raised:
        load_settings({}, config)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def beakerd(capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str) -> tuple[int, str]:
    code = cli.main(["--data-dir", str(data_dir), *args])
    out, err = capsys.readouterr()
    return code, out + err


def test_account_quota_sets_and_shows_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    beakerd(capsys, data, "account", "add", "bob")
    assert beakerd(capsys, data, "account", "quota", "bob") == (0, "bob: 0 B used of unlimited\n")
    assert beakerd(capsys, data, "account", "quota", "bob", "500M") == (
        0,
        "bob: 0 B used of 500.0 MiB\n",
    )
    code, out = beakerd(capsys, data, "account", "quota", "bob", "many")
    assert code == 2 and "is not a size" in out


def test_policy_set_list_and_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    code, out = beakerd(
        capsys, data, "policy", "set", "alice/*", "--immutable-tags", "v*",
        "--keep-newest", "3", "--tags", "dev-*",
    )  # fmt: skip
    assert (code, out) == (0, "policy for alice/*: immutable v*; keep newest 3 of dev-*\n")
    assert beakerd(capsys, data, "policy", "list")[1] == (
        "alice/*\tstored\timmutable v*; keep newest 3 of dev-*\n"
    )
    code, out = beakerd(capsys, data, "policy", "set", "alice/*", "--tags-older-than", "never")
    assert code == 2 and "is not a duration" in out
    assert beakerd(capsys, data, "policy", "remove", "alice/*")[0] == 0
    assert beakerd(capsys, data, "policy", "remove", "alice/*")[0] == 1
