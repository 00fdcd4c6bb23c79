"""Side-by-side registry benchmark: beakerd against the CNCF reference registry (docker-registry).

    python -m bench.registry_bench            # 1 GiB blob, 3 runs each, wrk 10 s
    python -m bench.registry_bench --quick    # 256 MiB blob, 2 runs each, wrk 5 s
    python -m bench.registry_bench --only reference   # one server (no results.md unless --output)

Both servers run side by side on loopback; each measurement alternates between them run by run
(only one is ever under load), so noise from a shared machine falls on both alike. Blob push
throughput (monolithic POST+PUT, and 16 MiB PATCH chunks + PUT), blob pull throughput, manifest
GET requests/s under `wrk -t2 -c32`, and the server's peak RSS during the pushes. Throughput and
requests/s keep the best of the runs (interference only ever slows a run down); RSS keeps the
highest sample over all push runs; server CPU s/GB (little moved by other load) the lowest.
MB = 10^6 bytes.

Each push run uploads a different blob (the file's last 16 bytes change, the digest is updated
from a saved hash of the rest), so no server can answer "already have it".
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from bench.client import FileSlice, RegistryClient, RegistryError
from bench.report import Measurements, errors_section, markdown_table
from bench.servers import (
    RegistryProcess,
    RssSampler,
    start_beakerd,
    start_reference,
    tree_cpu_seconds,
    tree_hwm_kib,
)

MIB = 1024 * 1024
CHUNK_SIZE = 16 * MIB
TAIL = 16
REPO = "bench/registry-bench"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
RESULTS_PATH = Path(__file__).resolve().parent / "results.md"


def log(message: str) -> None:
    print(message, flush=True)


class BlobFile:
    """A file of random bytes, generated once; `variant(n)` makes it a distinct blob per run."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        prefix = hashlib.sha256()
        piece = 16 * MIB
        with open(path, "wb") as f:
            start = 0
            while start < size:
                data = os.urandom(min(piece, size - start))
                f.write(data)
                # Hash all but the tail now; variants only redo the last 16 bytes.
                prefix.update(data[: max(0, size - TAIL - start)])
                start += len(data)
        self._prefix = prefix
        self.file = open(path, "r+b")  # closed by close()

    def variant(self, n: int) -> str:
        tail = n.to_bytes(TAIL, "big")
        os.pwrite(self.file.fileno(), tail, self.size - TAIL)
        digest = self._prefix.copy()
        digest.update(tail)
        return "sha256:" + digest.hexdigest()

    def whole(self) -> FileSlice:
        return FileSlice(self.file, 0, self.size)

    def close(self) -> None:
        self.file.close()


def settle() -> None:
    """Write back earlier runs' dirty pages now, so that no run pays for the one before it."""
    os.sync()


def wait_for_quiet(max_load: float, timeout: float) -> float:
    """Wait up to `timeout` s for the 1-minute load average to drop to `max_load`; returns it.

    Other work on a 2-CPU machine moves every number here; better to start when it is quiet.
    """
    deadline = time.monotonic() + timeout
    load = os.getloadavg()[0]
    if load > max_load and timeout > 0:
        log(f"load average {load:.2f} > {max_load}: waiting up to {timeout:.0f} s for quiet")
    while load > max_load and time.monotonic() < deadline:
        time.sleep(5)
        load = os.getloadavg()[0]
    return load


def mb_per_s(size: int, seconds: float) -> float:
    return size / seconds / 1e6


class ServerBench:
    """One running registry: single timed runs of each measurement, and the best so far."""

    def __init__(self, server: RegistryProcess, blob: BlobFile, args: argparse.Namespace) -> None:
        self.server = server
        self.name = server.name
        self.blob = blob
        self.args = args
        self.client = RegistryClient(server.url, server.username, server.password)
        self.results: Measurements = {}
        self.last_digest: str | None = None
        self.peak_rss_kib = 0
        self._variant = 0
        self._manifest: bytes | None = None

    def run_once(self, key: str, run: int) -> None:
        """One timed run of measurement `key`; keeps the best value, or the first error."""
        if isinstance(self.results.get(key), str):
            return  # failed before: later runs would only repeat the error
        try:
            value, note = MEASUREMENTS[key](self)
        except Exception as error:  # one broken measurement must not hide the others
            self.results[key] = f"{type(error).__name__}: {error}"
            log(f"  {self.name:9} {key} run {run}: FAILED: {self.results[key]}")
            self.client.close()  # the connection may be mid-response
            if self.server.proc.poll() is not None:
                log(f"  {self.name} died:\n{self.server.log_tail()}")
            return
        previous = self.results.get(key)
        self.results[key] = max(value, previous) if isinstance(previous, float) else value
        log(f"  {self.name:9} {key} run {run}: {note}")

    def auth_used(self) -> str:
        """How this client ended up authenticating: 'Bearer token', 'Basic' or 'none'."""
        scheme = (self.client.authorization or "none").split()[0]
        return "Bearer token" if scheme == "Bearer" else scheme

    def finish(self) -> Measurements:
        if self.peak_rss_kib:
            self.results["push_peak_rss"] = self.peak_rss_kib / 1024
            hwm = tree_hwm_kib(self.server.pid) / 1024
            log(f"  {self.name:9} peak RSS during pushes {self.peak_rss_kib / 1024:.1f} MiB "
                f"(VmHWM since start {hwm:.1f} MiB)")  # fmt: skip
        self.client.close()
        return self.results

    def push(self, chunked: bool) -> tuple[float, str]:
        self._variant += 1
        digest = self.blob.variant(self._variant)
        self.client.ensure_login(REPO)  # a fresh token, so no 401 lands mid-body
        settle()
        cpu_before = tree_cpu_seconds(self.server.pid)
        with RssSampler(self.server.pid) as sampler:
            start = time.perf_counter()
            if chunked:
                self.client.push_blob_chunked(REPO, self.blob.whole(), digest, CHUNK_SIZE)
            else:
                self.client.push_blob_monolithic(REPO, self.blob.whole(), digest)
            seconds = time.perf_counter() - start
        # Server CPU per GB: unlike MB/s, barely moved by other load on a shared machine.
        cpu = (tree_cpu_seconds(self.server.pid) - cpu_before) / (self.blob.size / 1e9)
        cpu_key = "push_chunked_cpu" if chunked else "push_monolithic_cpu"
        previous = self.results.get(cpu_key)
        self.results[cpu_key] = min(cpu, previous) if isinstance(previous, float) else cpu
        self.last_digest = digest
        self.peak_rss_kib = max(self.peak_rss_kib, sampler.peak_kib)
        rate = mb_per_s(self.blob.size, seconds)
        return rate, (
            f"{rate:,.0f} MB/s ({seconds:.2f} s, server CPU {cpu:.2f} s/GB, "
            f"peak RSS {sampler.peak_kib / 1024:.0f} MiB)"
        )

    def push_monolithic(self) -> tuple[float, str]:
        return self.push(chunked=False)

    def push_chunked(self) -> tuple[float, str]:
        return self.push(chunked=True)

    def pull(self) -> tuple[float, str]:
        if self.last_digest is None:  # no push run succeeded: push one, untimed
            self._variant += 1
            digest = self.blob.variant(self._variant)
            self.client.ensure_login(REPO)
            self.client.push_blob_monolithic(REPO, self.blob.whole(), digest)
            self.last_digest = digest
        self.client.ensure_login(REPO)
        settle()
        start = time.perf_counter()
        size = self.client.pull_blob(REPO, self.last_digest)
        seconds = time.perf_counter() - start
        if size != self.blob.size:
            raise RegistryError(f"pulled {size} bytes, expected {self.blob.size}")
        rate = mb_per_s(size, seconds)
        return rate, f"{rate:,.0f} MB/s ({seconds:.2f} s)"

    def manifest_get(self) -> tuple[float, str]:
        if self._manifest is None:
            self._manifest = push_small_image(self.client)
        # A fresh token per run: beakerd's tokens are short-lived and wrk cannot renew them.
        self.client.ensure_login(REPO)
        rate = run_wrk(
            f"{self.server.url}/v2/{REPO}/manifests/latest",
            {"Accept": OCI_MANIFEST, **auth_header(self.client)},
            self.args.wrk_duration,
        )
        return rate, f"{rate:,.0f} req/s"


def push_small_image(client: RegistryClient) -> bytes:
    """A config blob, one small layer and an OCI image manifest tagged `latest`; returns it."""
    layer = os.urandom(64 * 1024)
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
    ).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    client.ensure_login(REPO)
    client.push_blob_monolithic(REPO, config, config_digest)
    client.push_blob_monolithic(REPO, layer, layer_digest)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
        }
    ).encode()
    client.put_manifest(REPO, "latest", manifest, OCI_MANIFEST)
    if client.get_manifest(REPO, "latest", OCI_MANIFEST) != manifest:
        raise RegistryError("GET manifests/latest did not return the pushed manifest")
    return manifest


# Measurement key → one timed run: (value, line to print).
MEASUREMENTS: dict[str, Callable[[ServerBench], tuple[float, str]]] = {
    "push_monolithic": ServerBench.push_monolithic,
    "push_chunked": ServerBench.push_chunked,
    "pull": ServerBench.pull,
    "manifest_get": ServerBench.manifest_get,
}


def auth_header(client: RegistryClient) -> dict[str, str]:
    return {"Authorization": client.authorization} if client.authorization else {}


def run_wrk(url: str, headers: dict[str, str], duration: int) -> float:
    """`wrk -t2 -c32 -d<duration>s`; requests/s, refusing runs with any non-2xx/3xx answer."""
    cmd = ["wrk", "-t2", "-c32", f"-d{duration}s"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(url)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=True)
    text = out.stdout
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if bad:
        raise RegistryError(f"wrk saw {bad.group(1)} non-2xx/3xx responses:\n{text}")
    errors = re.search(r"Socket errors:.*", text)
    if errors:
        log(f"    wrk: {errors.group(0)}")
    rate = re.search(r"Requests/sec:\s*([\d.]+)", text)
    if not rate:
        raise RegistryError(f"could not parse wrk output:\n{text}\n{out.stderr}")
    return float(rate.group(1))


def run_benchmarks(benches: list[ServerBench], runs: int) -> None:
    """Each measurement, run by run, alternating servers, so noise on a shared machine (other
    processes, disk writeback) falls on both alike rather than on whichever ran second."""
    for key in MEASUREMENTS:
        log(f"\n-- {key}")
        for run in range(1, runs + 1):
            order = benches if run % 2 else list(reversed(benches))
            for bench in order:
                bench.run_once(key, run)


def stop_server(server: RegistryProcess) -> None:
    server.stop()
    log(f"stopped {server.name} (pid {server.pid})")


def header(args: argparse.Namespace, blob_size: int, load: float, auth: dict[str, str]) -> str:
    registry_version = subprocess.run(
        ["docker-registry", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "# beakerd vs reference registry",
            "",
            f"Run {now} with `python -m bench.registry_bench{' --quick' if args.quick else ''}` "
            f"on {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()};"
            f" reference: {registry_version or 'docker-registry'} (filesystem storage).",
            "",
            f"- Blob: {blob_size // MIB} MiB of random data, a different blob for every push run;"
            f" `sync` before each timed push or pull. MB = 10^6 bytes.",
            f"- {args.runs} runs per measurement, alternating between the servers (both run side"
            f" by side on loopback). Kept: the best run for MB/s and req/s, the lowest for server"
            f" CPU s/GB (utime+stime of the server process), the highest VmRSS sample (every"
            f" 50 ms over all push runs) for RSS.",
            f"- Client: uploads with sendfile from the file, reads into a 4 MiB buffer; manifest"
            f" GET with `wrk -t2 -c32 -d{args.wrk_duration}s`.",
            f"- 1-minute load average at start: {load:.2f}"
            + (" (a busy machine: treat the numbers with care)." if load > 1.0 else "."),
            "- Auth: " + (", ".join(f"{k}: {v}" for k, v in auth.items()) or "-") + ".",
            "",
            "",
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.registry_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="256 MiB blob, 2 runs, 5 s wrk")
    parser.add_argument("--only", choices=["beakerd", "reference"], help="measure one server")
    parser.add_argument("--runs", type=int, help="runs per measurement (default 3, quick 2)")
    parser.add_argument("--blob-mib", type=int, help="blob size in MiB (default 1024, quick 256)")
    parser.add_argument("--wrk-duration", type=int, help="seconds per wrk run (10, quick 5)")
    parser.add_argument("--output", type=Path, help=f"Markdown results file (default {RESULTS_PATH}"
                        " for full comparisons, none with --only)")  # fmt: skip
    parser.add_argument(
        "--max-load",
        type=float,
        default=1.0,
        help="wait for the 1-minute load average to drop to this (default 1.0)",
    )
    parser.add_argument(
        "--quiet-timeout",
        type=float,
        default=120,
        help="seconds to wait for that before starting anyway (default 120)",
    )
    parser.add_argument("--keep-tmp", action="store_true", help="keep data dirs and logs")
    args = parser.parse_args(argv)
    args.runs = args.runs or (2 if args.quick else 3)
    args.blob_mib = args.blob_mib or (256 if args.quick else 1024)
    args.wrk_duration = args.wrk_duration or (5 if args.quick else 10)
    if args.output is None and args.only is None:
        args.output = RESULTS_PATH
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the servers


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    if shutil.which("wrk") is None or shutil.which("docker-registry") is None:
        log("needs wrk and docker-registry (apt-get install wrk docker-registry)")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="registry-bench-"))
    results: dict[str, Measurements] = {}
    auth: dict[str, str] = {}
    starters: dict[str, Callable[[Path], RegistryProcess]] = {
        "reference": start_reference,
        "beakerd": start_beakerd,
    }
    load = wait_for_quiet(args.max_load, args.quiet_timeout)
    try:
        with contextlib.ExitStack() as stack:
            if not args.keep_tmp:
                stack.callback(shutil.rmtree, tmp, True)  # runs last: after the servers stop
            size = args.blob_mib * MIB
            log(f"generating a {args.blob_mib} MiB random blob in {tmp}")
            blob = BlobFile(tmp / "blob.bin", size)
            stack.callback(blob.close)
            benches: list[ServerBench] = []
            for name, start in starters.items():
                if args.only not in (None, name):
                    continue
                try:
                    server = start(tmp / name)
                except Exception as error:
                    log(f"{name}: could not start: {error}")
                    results[name] = {"push_monolithic": f"could not start: {error}"}
                    continue
                stack.callback(stop_server, server)  # by PID, on any exit
                log(f"{name}: {server.url}, pid {server.pid}")
                if name == "beakerd" and server.password is None:
                    log("  (no $HOME/.beaker/config.yml written: running without credentials)")
                benches.append(ServerBench(server, blob, args))
            run_benchmarks(benches, args.runs)
            log("")
            for bench in benches:
                auth[bench.name] = bench.auth_used()
                results[bench.name] = bench.finish()
    finally:
        if args.keep_tmp:
            log(f"kept {tmp}")
    table = markdown_table(results.get("beakerd"), results.get("reference"))
    errors = errors_section(results)
    document = header(args, args.blob_mib * MIB, load, auth) + table + "\n"
    if errors:
        document += "\nErrors:\n" + errors + "\n"
    log("\n" + document)
    if args.output is not None:
        args.output.write_text(document)
        log(f"written to {args.output}")
    failed = any(isinstance(v, str) for m in results.values() for v in m.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
