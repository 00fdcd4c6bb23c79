"""Replicas started at the same moment on an empty database agree on everything made once:
the schema (migrations run once, under an advisory lock), the signing key, the first account."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from metadata.schema import MIGRATIONS as METADATA_MIGRATIONS
from storage.schema import MIGRATIONS as STORAGE_MIGRATIONS
from tests.backends.cluster import Cluster, running_cluster
from tests.backends.postgres import PostgresServer
from tests.backends.seaweedfs import SeaweedFS
from tests.cluster.calls import basic, call

pytestmark = pytest.mark.e2e


async def _counts(url: str) -> dict[str, object]:
    conn = await asyncpg.connect(url)
    try:
        migrations = {
            row["component"]: row["version"]
            for row in await conn.fetch("SELECT component, version FROM schema_migrations")
        }
        return {
            "migrations": migrations,
            "secrets": await conn.fetchval("SELECT count(*) FROM server_secrets"),
            "accounts": await conn.fetchval("SELECT count(*) FROM accounts"),
            "tokens": await conn.fetchval("SELECT count(*) FROM api_tokens"),
        }
    finally:
        await conn.close()


def test_replicas_starting_together_make_one_schema_one_key_and_one_account(
    tmp_path: Path, cluster_backends: tuple[PostgresServer, SeaweedFS]
) -> None:
    postgres, s3 = cluster_backends
    with running_cluster(tmp_path / "cluster", postgres, replicas=3, s3=s3) as cluster:
        counts = asyncio.run(_counts(cluster.database))
        assert counts == {
            "migrations": {
                "storage": len(STORAGE_MIGRATIONS),
                "metadata": len(METADATA_MIGRATIONS),
            },
            "secrets": 1,
            "accounts": 1,
            "tokens": 1,
        }
        # One replica made the account, so one wrote its token into a Beaker config.
        assert len(cluster.beaker_configs()) == 1
        assert cluster.beaker_configs()[0]["agent_address"] == cluster.url
        # No replica keeps a key file: they sign with the database's key, so a token one
        # replica issues is good on every other.
        assert not any((r.data_dir / "keys").exists() for r in cluster.replicas)
        _each_replica_accepts_what_the_others_issue(cluster)


def _each_replica_accepts_what_the_others_issue(cluster: Cluster) -> None:
    login = basic(cluster.username, cluster.password or "")
    for issuer in cluster.replicas:
        status, issued = call(f"{issuer.url}/v2/token?service=beakerd", auth=login)
        assert status == 200
        for verifier in cluster.replicas:
            bearer = f"Bearer {issued['token']}"
            assert call(verifier.url + "/v2/", auth=bearer)[0] == 200, (issuer, verifier)
