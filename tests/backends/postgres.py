"""A real PostgreSQL server for tests and benchmarks: Debian's binaries, in a temporary folder.

`initdb` refuses to run as root, so as root the server runs as an unprivileged user made for
it. The server listens on a free loopback port with password (SCRAM) authentication, as a
deployment would; fsync is off, since a test's data needs no durability.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg

_OS_USER = "beakerd-pg"
USER = "beakerd"


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server binaries (Debian's layout first), or None."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> list[str]:
    """The prefix that runs a command as the server's OS user (nothing unless root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(_OS_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _OS_USER],
            check=True,
            capture_output=True,
        )
    return ["runuser", "-u", _OS_USER, "--"]


class PostgresServer:
    def __init__(self) -> None:
        binaries = postgres_bin()
        if binaries is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = binaries
        # Its own folder straight under /tmp: the server's user cannot enter root's 0700 ones.
        self.root = Path(tempfile.mkdtemp(prefix="beakerd-pg-"))
        self.port = _free_port()
        self.password = secrets.token_hex(16)
        self._as = _run_as()

    def _pg(self, *args: str) -> None:
        done = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr or done.stdout}")

    def start(self) -> PostgresServer:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password)
        if self._as:
            shutil.chown(self.root, _OS_USER)
            shutil.chown(pwfile, _OS_USER)
        data = self.root / "data"
        self._pg(
            str(self.bin / "initdb"),
            "-D", str(data),
            "-U", USER,
            "--pwfile", str(pwfile),
            "--auth", "scram-sha-256",
            "--encoding", "UTF8",
            "--no-sync",
        )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=300"
        )
        self._pg(
            str(self.bin / "pg_ctl"),
            "-D", str(data),
            "-l", str(self.root / "server.log"),
            "-o", options,
            "-w", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        data = self.root / "data"
        if (data / "postmaster.pid").exists():
            self._pg(str(self.bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    async def create_database(self) -> str:
        """The URL of a new, empty database: a schema of its own in the server's database,
        chosen by `search_path` (CREATE DATABASE copies a template and takes a second)."""
        name = f"t_{secrets.token_hex(6)}"
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f"CREATE SCHEMA {name}")
        finally:
            await conn.close()
        return f"{self.url()}?search_path={name}"


def wait_until_accepting(server: PostgresServer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
