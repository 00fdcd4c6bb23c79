"""First start: an admin account, its org and workspace, and (if absent) the user's Beaker config.

The config (`~/.beaker/config.yml`) is what both the `beaker` CLI and beaker-py read, so after
`beakerd serve` a user can `beaker image create` with no other setup. An existing config is
never touched: it may point at another Beaker. Replicas starting together make one account
between them, and only the one that made it writes a config (on its own machine).
"""

from __future__ import annotations

import getpass
import logging
import os
import re
from pathlib import Path

import yaml

from metadata.accounts import DEFAULT_WORKSPACE, count_accounts, create_first_account
from storage.database import Database

log = logging.getLogger("beakerd.metadata")


def beaker_config_path() -> Path:
    """Where Beaker clients look: `$BEAKER_CONFIG`, else `~/.beaker/config.yml`."""
    override = os.environ.get("BEAKER_CONFIG")
    return Path(override) if override else Path.home() / ".beaker" / "config.yml"


async def bootstrap(
    db: Database,
    registry_address: str,
    account_name: str | None,
    config_path: Path | None = None,
    scheme: str = "http",
    rpc_address: str | None = None,
    ca_file: Path | None = None,
) -> None:
    """Create the first account when there is none; write the Beaker config if missing.

    `rpc_address` is where beaker-py 2.x finds the gRPC API (host:port, always TLS); `ca_file`
    is the CA of a `--tls auto` server, which the `beaker` CLI then trusts.
    """
    if await count_accounts(db) > 0:
        return
    name = account_name or _safe_name(getpass.getuser())
    created = await create_first_account(db, name)
    if created is None:
        return  # another worker process or replica bootstrapped first
    account, token = created
    log.info(
        "created admin account %s (organization %s, workspace %s/%s)",
        account.name,
        account.name,
        account.name,
        DEFAULT_WORKSPACE,
    )
    path = config_path or beaker_config_path()
    config = {
        "agent_address": f"{scheme}://{registry_address}",
        "user_token": token,
        "default_org": account.name,
        "default_workspace": f"{account.name}/{DEFAULT_WORKSPACE}",
    }
    if rpc_address is not None:
        config["rpc_address"] = rpc_address
    if ca_file is not None:
        config["ca_file"] = str(ca_file)
    if write_config_if_absent(path, config):
        log.info("wrote Beaker client config with the admin's API token to %s", path)
    else:
        log.info(
            "left the existing Beaker client config %s unchanged; create a token for %s"
            " with the admin CLI to log in",
            path,
            account.name,
        )


def _safe_name(user: str) -> str:
    """An OS user name as an account name: lowercase words joined by '-' (`Jane Doe` ->
    `jane-doe`), so that it is also a valid registry namespace."""
    words = re.findall(r"[a-z0-9]+", user.lower())
    return "-".join(words) or "admin"


def write_config_if_absent(path: Path, config: dict[str, str]) -> bool:
    """Write `config` as YAML, mode 0600, unless `path` exists; True when written."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        # O_EXCL: never overwrite, even if another process writes it at the same moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, default_flow_style=False, sort_keys=False)
    return True
