"""A real `beakerd serve` bootstraps `tester` and its token reaches /api/v3 (tests/server.py)."""

from __future__ import annotations

import json
import urllib.request

from tests.server import Server


def test_the_served_bootstrap_token_logs_in_to_the_api(fresh_beakerd: Server) -> None:
    token = fresh_beakerd.password
    assert token is not None, fresh_beakerd.log()
    request = urllib.request.Request(
        fresh_beakerd.url + "/api/v3/user", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        me = json.load(resp)
    assert me["name"] == fresh_beakerd.username == "tester"
    assert "wrote Beaker client config" in fresh_beakerd.log()
    config = (fresh_beakerd.home / ".beaker" / "config.yml").read_text()
    assert f"agent_address: http://{fresh_beakerd.address}" in config
