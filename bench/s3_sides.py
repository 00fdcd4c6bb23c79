"""The registries of the S3 benchmark, each started on a bucket of its own in the shared SeaweedFS.

A side is started once per pull mode, on the same bucket (and, for beakerd, the same data
folder), so that what one start pushed the next can pull:
- stream: the registry reads the object and sends the bytes itself (the reference's
  `redirect: disable`, beakerd's stream mode);
- redirect: the registry answers 307 with a presigned URL into SeaweedFS.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bench.servers import BEAKERD_ACCOUNT, start_beakerd, start_reference

if TYPE_CHECKING:
    from tests.backends.cluster import Cluster
    from tests.backends.postgres import PostgresServer
    from tests.backends.seaweedfs import SeaweedFS

REFERENCE_BUCKET = "reference"
BEAKERD_BUCKET = "beakerd"
CLUSTER_BUCKET = "beakerd-cluster"
REPLICAS = 3
# beakerd's setting `blob_redirect`: on S3, answer blob GETs with a presigned 307 or stream them.
BEAKERD_REDIRECT_VARIABLE = "BEAKERD_BLOB_REDIRECT"


class Served(Protocol):
    """A running registry as the bench sees it: one process, or replicas behind a proxy."""

    name: str
    username: str | None
    password: str | None

    @property
    def url(self) -> str: ...

    @property
    def pids(self) -> list[int]: ...

    def running(self) -> bool: ...

    def stop(self) -> None: ...

    def log_tail(self, lines: int = 30) -> str: ...


@dataclass
class Side:
    """One registry under test: how to start it in a pull mode, and the bucket it writes."""

    name: str
    start: Callable[[bool], Served]  # redirect? → a running server
    bucket: str | None  # None: not on S3 (beakerd's file store, to debug the harness)
    storage: str  # for the report: where its blobs live
    # False: every start is a new, empty registry (what one start pushed, the next cannot pull).
    keeps_data: bool = True


def reference_side(workdir: Path, store: SeaweedFS) -> Side:
    """Debian's docker-registry with its `s3` driver pointed at SeaweedFS (driver defaults
    otherwise: 10 MiB multipart chunks)."""

    def start(redirect: bool) -> Served:
        s3 = {
            "accesskey": store.access_key,
            "secretkey": store.secret_key,
            "region": store.region,
            "regionendpoint": store.endpoint,
            "bucket": REFERENCE_BUCKET,
            "secure": False,
            "v4auth": True,
            "rootdirectory": "/",
        }
        storage: dict[str, object] = {"s3": s3, "redirect": {"disable": not redirect}}
        folder = workdir / ("redirect" if redirect else "stream")
        return start_reference(folder, storage, name="reference")

    return Side("reference", start, REFERENCE_BUCKET, f"s3 driver, bucket {REFERENCE_BUCKET}")


def beakerd_side(workdir: Path, store: SeaweedFS | None) -> Side:
    """One `beakerd serve` on `s3://beakerd` (or on its data folder when `store` is None)."""

    def start(redirect: bool) -> Served:
        if store is None:
            if redirect:
                raise RuntimeError("a file store has no redirect to offer")
            return start_beakerd(workdir, name="beakerd")
        env = {**store.environment(), BEAKERD_REDIRECT_VARIABLE: "true" if redirect else "false"}
        return start_beakerd(
            workdir,
            ["--blob-store", f"s3://{BEAKERD_BUCKET}"],
            env,
            name="beakerd",
            unset_env=("AWS_CA_BUNDLE",),
        )

    if store is None:
        return Side("beakerd", start, None, "file store (data folder)")
    return Side("beakerd", start, BEAKERD_BUCKET, f"s3://{BEAKERD_BUCKET}")


def cluster_side(workdir: Path, store: SeaweedFS, postgres: PostgresServer | None) -> Side:
    """Three beakerd replicas on one PostgreSQL database and `s3://beakerd-cluster`, behind
    nginx (tests/backends/cluster.py). Each start is a fresh cluster with a fresh database, so
    the redirect phase pushes its blob again (untimed)."""

    def start(redirect: bool) -> Served:
        if postgres is None:
            raise RuntimeError("no PostgreSQL for the replicas (apt-get install postgresql)")
        try:
            from tests.backends.cluster import running_cluster
        except ImportError as error:
            raise RuntimeError(
                "tests/backends/cluster.py (replicas behind nginx) is not merged yet"
            ) from error
        env = {
            BEAKERD_REDIRECT_VARIABLE: "true" if redirect else "false",
            # The bench's repositories are under its account's namespace, as for one beakerd.
            "BEAKERD_BOOTSTRAP_ACCOUNT": BEAKERD_ACCOUNT,
        }
        # The cluster's own `--blob-store` names the bucket (a fresh prefix in it): without
        # `s3`, the replicas would share a folder and SeaweedFS would see nothing.
        bucket = replace(store, bucket=CLUSTER_BUCKET)
        stack = contextlib.ExitStack()
        folder = workdir / ("redirect" if redirect else "stream")
        try:
            cluster = stack.enter_context(
                running_cluster(folder, postgres, REPLICAS, env, s3=bucket)
            )
        except BaseException:
            stack.close()
            raise
        return ClusterServer(cluster, stack, postgres_pid(postgres))

    label = (
        f"s3://{CLUSTER_BUCKET}/cluster-<fresh>, {REPLICAS} replicas on PostgreSQL, nginx in front"
    )
    return Side("beakerd x3", start, CLUSTER_BUCKET, label, keeps_data=False)


def postgres_pid(postgres: PostgresServer) -> int | None:
    """The postmaster's PID (pg_ctl daemonizes it): its tree holds every backend."""
    try:
        return int((postgres.root / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class ClusterServer:
    """A running cluster as one server: nginx's URL; its CPU is the replicas', nginx's and
    PostgreSQL's (the single beakerd's SQLite runs inside its own process)."""

    name = "beakerd x3"

    def __init__(self, cluster: Cluster, stack: contextlib.ExitStack, postgres: int | None):
        self.cluster = cluster
        self._stack = stack
        self._postgres = postgres
        self.username: str | None = BEAKERD_ACCOUNT
        self.password: str | None = cluster.password

    @property
    def url(self) -> str:
        return self.cluster.url

    @property
    def pids(self) -> list[int]:
        procs = [replica.proc for replica in self.cluster.replicas] + [self.cluster.nginx.proc]
        pids = [proc.pid for proc in procs if proc is not None]
        return pids + ([self._postgres] if self._postgres is not None else [])

    def running(self) -> bool:
        nginx = self.cluster.nginx.proc
        alive = nginx is not None and nginx.poll() is None
        return alive and all(replica.running() for replica in self.cluster.replicas)

    def stop(self) -> None:
        self._stack.close()

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.cluster.logs().splitlines()[-lines:])
