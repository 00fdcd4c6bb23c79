"""Several `beakerd serve` replicas behind Debian's nginx: what a deployment past one machine is.

Each replica is a subprocess with a data folder, a HOME and a port of its own; they share only
the PostgreSQL database (`--database`, a fresh one per cluster) and the blob store. nginx runs
in front as a non-daemon child with a generated config (round robin, no stickiness, streaming
both ways, retrying the next replica when one refuses the connection), and every replica's
`--public-address` is nginx's address, so the token realm and upload Locations all point at
the balancer. gRPC is off in the cluster (`BEAKERD_GRPC_ENABLED=false`).

The blob store is `--blob-store s3://BUCKET/PREFIX` on a SeaweedFS (tests/backends/seaweedfs.py)
when one is given, as replicas run in production; otherwise `--blob-store file:///PATH`, one
folder outside every data folder that all replicas use (what an NFS mount would be). Each data
folder (keys, the generation file, lock files, metric snapshots, scrub state) stays the
replica's own, so nothing but the blobs can pass between replicas except through the database.

Which replica served what is read from the replicas' own access logs (JSON lines, one log file
per replica); nginx's access log records the upstream of each request as well.

Reusable outside pytest (bench/): `with running_cluster(tmp, postgres) as cluster: ...`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.backends.postgres import PostgresServer
from tests.backends.seaweedfs import SeaweedFS
from tests.server import BOOTSTRAP_ACCOUNT, free_port

START_TIMEOUT = 60.0


@dataclass
class Replica:
    index: int
    port: int
    data_dir: Path
    home: Path
    log_path: Path
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, by PID: the replica dies mid-request, as a lost machine would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def access_lines(self) -> list[dict[str, Any]]:
        """The requests this replica answered, in order (its JSON access log)."""
        lines = []
        for text in self.log().splitlines():
            if not text.startswith("{"):
                continue
            with contextlib.suppress(ValueError):
                record = json.loads(text)
                if record.get("logger") == "beakerd.access":
                    lines.append(record)
        return lines

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        wait_answering(self.url + "/readyz", timeout, self.proc, self.log_path)


@dataclass
class Nginx:
    port: int
    root: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def access_log(self) -> Path:
        return self.root / "access.log"

    @property
    def error_log(self) -> Path:
        return self.root / "error.log"

    def upstreams(self) -> list[tuple[str, str, str]]:
        """(request line, status, upstream addresses) of every request nginx passed on."""
        rows = []
        for text in self.access_log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(text)
                rows.append((record["request"], record["status"], record["upstream"]))
        return rows

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)  # graceful: finish requests in flight
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Cluster:
    """N replicas, nginx in front. Satisfies tests/e2e/tools.py `Registry`."""

    replicas: list[Replica]
    nginx: Nginx
    database: str
    blob_store: str

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.nginx.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def username(self) -> str:
        return BOOTSTRAP_ACCOUNT

    @property
    def password(self) -> str | None:
        """The bootstrap account's API token, from the config its replica wrote."""
        configs = self.beaker_configs()
        return str(configs[0]["user_token"]) if configs else None

    def beaker_configs(self) -> list[dict[str, Any]]:
        """The Beaker configs first start wrote, one per replica that wrote one."""
        found = []
        for replica in self.replicas:
            path = replica.home / ".beaker" / "config.yml"
            if path.exists():
                found.append(yaml.safe_load(path.read_text()))
        return found

    @property
    def home(self) -> Path:
        """The HOME of the replica that made the first account and wrote its Beaker config:
        where the `beaker` CLI and beaker-py find the address (nginx's) and the token."""
        for replica in self.replicas:
            if (replica.home / ".beaker" / "config.yml").exists():
                return replica.home
        raise RuntimeError("no replica wrote a Beaker config")

    def served_by(self, method: str, path_part: str) -> list[int]:
        """Indexes of the replicas that answered requests of `method` whose path has
        `path_part`, in the order each replica logged them (one entry per request)."""
        return [
            replica.index
            for replica in self.replicas
            for line in replica.access_lines()
            if line["method"] == method and path_part in line["path"]
        ]

    def logs(self) -> str:
        parts = [f"--- replica {r.index} ({r.address})\n{r.log()}" for r in self.replicas]
        parts.append(f"--- nginx error log\n{_read(self.nginx.error_log)}")
        return "\n".join(parts)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def wait_answering(
    url: str, timeout: float, proc: subprocess.Popen[bytes] | None, log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited early:\n{_read(log)}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError as e:
            if e.code != 502:  # 502: nginx is up but no replica is yet
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s:\n{_read(log)}")


def nginx_conf(root: Path, port: int, upstreams: Sequence[str]) -> str:
    servers = "\n".join(f"        server {address} max_fails=0;" for address in upstreams)
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return f"""# Generated by tests/backends/cluster.py.
{user}worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 1024; }}
http {{
    log_format upstream escape=json '{{"request":"$request","status":"$status",'
        '"upstream":"$upstream_addr","upstream_status":"$upstream_status"}}';
    access_log {root}/access.log upstream;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;

    upstream beakerd {{
        # Round robin, no stickiness: any request may reach any replica. max_fails=0: a dead
        # replica is never marked down, so every request its turn brings meets the refused
        # connection and goes on to the next replica (the path a test must see working).
{servers}
        keepalive 32;
    }}

    server {{
        listen 127.0.0.1:{port};
        # Blobs of any size, streamed to the replica as they arrive and back as they leave.
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        proxy_read_timeout 600s;
        proxy_send_timeout 600s;

        location / {{
            proxy_pass http://beakerd;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # With the port: replicas build the token realm and Locations from it.
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            # A replica that refuses the connection (dead): the next one takes the request.
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
        }}
    }}
}}
"""


def _replica(
    index: int, tmp: Path, blob_store: str, database: str, public: str, env: dict[str, str]
) -> Replica:
    root = tmp / f"replica-{index}"
    data_dir = root / "data"
    home = root / "home"
    data_dir.mkdir(parents=True)
    home.mkdir()
    port = free_port()
    replica_env = {
        **{k: v for k, v in os.environ.items() if k not in ("BEAKER_CONFIG", "XDG_DATA_HOME")},
        "HOME": str(home),
        "BEAKERD_BOOTSTRAP_ACCOUNT": BOOTSTRAP_ACCOUNT,
        "BEAKERD_GRPC_ENABLED": "false",
        **env,
    }
    args = [
        sys.executable, "-m", "beakerd", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir),
        "--database", database, "--blob-store", blob_store,
        "--public-address", public, "--log-format", "json",
    ]  # fmt: skip
    return Replica(index, port, data_dir, home, root / "beakerd.log", args, replica_env)


def _new_database(postgres: PostgresServer) -> str:
    with ThreadPoolExecutor(1) as pool:  # callable from inside a running event loop too
        return pool.submit(asyncio.run, postgres.create_database()).result()


@contextlib.contextmanager
def running_cluster(
    tmp: Path,
    postgres: PostgresServer,
    replicas: int = 3,
    env: dict[str, str] | None = None,
    replica_env: dict[int, dict[str, str]] | None = None,
    s3: SeaweedFS | None = None,
) -> Iterator[Cluster]:
    """`replicas` beakerd replicas, all started at once, on a fresh database, behind nginx.

    `s3`: blobs in a fresh prefix of its bucket (else in a shared folder under `tmp`). `env` is
    added to every replica's environment, `replica_env[i]` to replica i's alone (one replica
    looping GC, say)."""
    tmp.mkdir(parents=True, exist_ok=True)
    database = _new_database(postgres)
    if s3 is not None:
        blob_store = f"s3://{s3.bucket}/cluster-{uuid.uuid4().hex[:12]}"
        env = {**s3.environment(), **(env or {})}
    else:
        (tmp / "blob-store").mkdir()
        blob_store = f"file://{tmp / 'blob-store'}"
    nginx = Nginx(free_port(), tmp / "nginx")
    nginx.root.mkdir()
    members = [
        _replica(
            i,
            tmp,
            blob_store,
            database,
            f"127.0.0.1:{nginx.port}",
            {**(env or {}), **(replica_env or {}).get(i, {})},
        )
        for i in range(replicas)
    ]
    cluster = Cluster(members, nginx, database, blob_store)
    conf = nginx.root / "nginx.conf"
    conf.write_text(nginx_conf(nginx.root, nginx.port, [r.address for r in members]))
    try:
        # Together, as an orchestrator starts them: migrations, the signing key and the first
        # account must come out once however they interleave.
        for replica in members:
            replica.start()
        for replica in members:
            replica.wait_ready()
        with open(nginx.root / "stderr.log", "ab") as log:
            nginx.proc = subprocess.Popen(
                ["nginx", "-p", str(nginx.root), "-c", str(conf), "-e", str(nginx.error_log)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_answering(cluster.url + "/readyz", START_TIMEOUT, nginx.proc, nginx.error_log)
        yield cluster
    finally:
        nginx.stop()
        for replica in members:
            replica.stop()
