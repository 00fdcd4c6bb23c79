"""Start a real `beakerd serve` in a subprocess, for integration and end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

BOOTSTRAP_ACCOUNT = "tester"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running beakerd: where it listens, where its data lives, and the bootstrap login."""

    port: int
    data_dir: Path
    home: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def username(self) -> str:
        return BOOTSTRAP_ACCOUNT

    @property
    def password(self) -> str | None:
        """The bootstrap account's API token, as written into the user's Beaker config."""
        config = self.home / ".beaker" / "config.yml"
        if not config.exists():
            return None
        token = yaml.safe_load(config.read_text()).get("user_token")
        return str(token) if token else None

    @property
    def store_args(self) -> list[str]:
        """Where this server keeps its data, as flags of the admin commands (`beakerd account
        add NAME ...`): the data folder, and the database and blob store it was started on."""
        args = ["--data-dir", str(self.data_dir)]
        for flag in ("--database", "--blob-store"):
            if flag in self.extra_args:
                args += [flag, self.extra_args[self.extra_args.index(flag) + 1]]
        return args

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL the server and every worker it forked at once, as a power cut would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def restart(self) -> None:
        """Start the server again on the same port and data folder."""
        self.stop()
        self.proc = _spawn(
            self.port, self.data_dir, self.home, self.log_path, self.extra_args, self.extra_env
        )
        _wait_ready(self)


def _spawn(
    port: int, data_dir: Path, home: Path, log_path: Path, extra_args: list[str],
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:  # fmt: skip
    env = dict(os.environ, **(extra_env or {}))
    env["HOME"] = str(home)
    env.pop("BEAKER_CONFIG", None)
    env.pop("XDG_DATA_HOME", None)
    env["BEAKERD_BOOTSTRAP_ACCOUNT"] = BOOTSTRAP_ACCOUNT
    cmd = [
        sys.executable, "-m", "beakerd", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir),
        *extra_args,
    ]  # fmt: skip
    # A session of its own: `kill()` can then take down the workers it forks too. The child
    # keeps its own copy of the log's descriptor; ours closes at once.
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_ready(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"beakerd exited early:\n{server.log()}")
        try:
            urllib.request.urlopen(server.url + "/v2/", timeout=2)
            return
        except urllib.error.HTTPError:
            return  # 401 is an answer too: the server is up
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"beakerd did not start within {timeout}s:\n{server.log()}")


@contextlib.contextmanager
def running_beakerd(
    tmp: Path, extra_args: list[str] | None = None, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """A beakerd on a free port with its own data folder and HOME under `tmp`; `env`: settings
    that have no flag (BEAKERD_...)."""
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    data_dir = tmp / "data"
    port = free_port()
    log_path = tmp / "beakerd.log"
    args = list(extra_args or [])
    extra_env = dict(env or {})
    proc = _spawn(port, data_dir, home, log_path, args, extra_env)
    server = Server(port, data_dir, home, proc, log_path, args, extra_env)
    try:
        _wait_ready(server)
        yield server
    finally:
        server.stop()
