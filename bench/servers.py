"""Start, watch and stop the two registries under test: beakerd and the CNCF reference registry.

Both run as child processes on loopback with their own data folder under a bench-owned tmp dir;
`RegistryProcess.stop` ends them by PID only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import yaml

BEAKERD_ACCOUNT = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RegistryProcess:
    """One running registry: where it listens, its PID, and the login to use (None: anonymous)."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def pids(self) -> list[int]:
        """The process trees whose CPU counts as this server's."""
        return [self.proc.pid]

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM this PID, then SIGKILL it if it has not exited within 15 s."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _wait_ready(server: RegistryProcess, timeout: float = 60.0) -> None:
    """Poll GET /v2/ until it answers (a 401 counts: the server is up, it wants a login)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited early:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + "/v2/", timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{server.name} did not start within {timeout:.0f}s:\n{server.log_tail()}")


def _v2_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/v2/", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def start_reference(
    workdir: Path, storage: dict[str, object] | None = None, name: str = "reference"
) -> RegistryProcess:
    """`docker-registry serve config.yml`, by default with filesystem storage under `workdir`.

    `storage` replaces the driver section (e.g. `{"s3": {...}, "redirect": {...}}`); the
    delete and cache settings stay. The access log is off: it is written per request to stdout
    and would only measure the log file.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    driver = storage or {"filesystem": {"rootdirectory": str(workdir / "data")}}
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            **driver,
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    config_path = workdir / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = workdir / "registry.log"
    env = dict(os.environ)
    # Set on these machines for TLS; the registry's AWS SDK panics at start when it is set.
    env.pop("AWS_CA_BUNDLE", None)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            ["docker-registry", "serve", str(config_path)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = RegistryProcess(name, port, proc, log_path)
    _wait_ready(server)
    return server


def start_beakerd(
    workdir: Path,
    extra_args: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
    name: str = "beakerd",
    unset_env: tuple[str, ...] = (),
) -> RegistryProcess:
    """`python -m beakerd serve` with HOME and the data folder under `workdir`.

    The bootstrap account `bench` gets its API token written into $HOME/.beaker/config.yml;
    that token is the password for the registry's token flow. `extra_args` go after `serve`'s
    own (e.g. `--blob-store`), `extra_env` over the inherited environment, less `unset_env`.
    """
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ)
    env["HOME"] = str(home)
    env.pop("BEAKER_CONFIG", None)
    env.pop("XDG_DATA_HOME", None)
    env["BEAKERD_BOOTSTRAP_ACCOUNT"] = BEAKERD_ACCOUNT
    env.update(extra_env or {})
    for variable in unset_env:
        env.pop(variable, None)
    cmd = [
        sys.executable, "-m", "beakerd", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(workdir / "data"),
        *(extra_args or []),
    ]  # fmt: skip
    log_path = workdir / "beakerd.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = RegistryProcess(name, port, proc, log_path)
    _wait_ready(server)
    config = home / ".beaker" / "config.yml"
    # The config is written at bootstrap; give a server that wants a login a moment to write it.
    deadline = time.monotonic() + 5
    while not config.exists() and _v2_status(server.url) == 401 and time.monotonic() < deadline:
        time.sleep(0.1)
    if config.exists():
        token = (yaml.safe_load(config.read_text()) or {}).get("user_token")
        if token:
            server.username = BEAKERD_ACCOUNT
            server.password = str(token)
    return server


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, so that a server with worker processes is measured whole."""
    tree = [pid]
    i = 0
    while i < len(tree):
        parent = tree[i]
        i += 1
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    tree.extend(int(c) for c in f.read().split())
            except OSError:
                continue
    return tree


def _status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of `pid`, plus cutime + cstime: the children it has already reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # Fields after the ")" that closes the command name: utime, stime, cutime, cstime
            # are the 12th to 15th.
            fields = f.read().rpartition(")")[2].split()
        return sum(int(field) for field in fields[11:15]) / _CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and its descendants (their threads included)."""
    return sum(_cpu_seconds(p) for p in _process_tree(pid))


def tree_rss_kib(pid: int) -> int:
    return sum(_status_kib(p, "VmRSS") for p in _process_tree(pid))


def tree_hwm_kib(pid: int) -> int:
    """Sum of per-process VmHWM (peak RSS since start): an upper bound for the tree's peak."""
    return sum(_status_kib(p, "VmHWM") for p in _process_tree(pid))


class RssSampler:
    """Samples the summed VmRSS of a process tree every `interval` seconds in a thread.

    Use as a context manager around the measured operation; `peak_kib` is the highest sample.
    """

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, tree_rss_kib(self.pid))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        # One last sample: the end of the push (finalising the blob) is part of it.
        self.peak_kib = max(self.peak_kib, tree_rss_kib(self.pid))
