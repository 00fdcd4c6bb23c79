"""Side-by-side benchmark on one SeaweedFS: beakerd (one replica, and three behind nginx) against
the CNCF reference registry (docker-registry's `s3` driver), each on a bucket of its own.

    python -m bench.s3_bench            # 1 GiB blob, 3 runs of pushes and wrk (10 s), 5 of pulls
    python -m bench.s3_bench --quick    # 256 MiB blob, wrk 5 s
    python -m bench.s3_bench --sides beakerd,reference --beakerd-store file   # harness check

Measured, for every side: blob push throughput (monolithic POST + PUT, and 16 MiB PATCH
chunks + PUT), with the CPU seconds per GiB pushed of the registry's processes and of
SeaweedFS (utime + stime from /proc, children included, read once both have gone quiet, so
that work left behind after the 201 counts); blob pull throughput with the registry streaming
the bytes, and by a 307 to a presigned SeaweedFS URL that the client follows; manifest GET
requests/s under `wrk -t2 -c32`. Each side is started in stream mode for the pushes, the
streamed pulls and wrk, then restarted on the same bucket in redirect mode for those pulls.

Runs alternate between the sides (only one is ever under load) and the table keeps the median
of the runs: on a shared machine neither side gets the quiet moments. After each push the
previous blob is deleted from the bucket and SeaweedFS compacts, so the disk needs room for a
few blobs per side, not for every run's. MB = 10^6 bytes, GiB = 2^30.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bench.client import RegistryClient, RegistryError
from bench.registry_bench import (
    CHUNK_SIZE,
    MIB,
    OCI_MANIFEST,
    REPO,
    BlobFile,
    _terminate,
    auth_header,
    log,
    mb_per_s,
    push_small_image,
    run_wrk,
    settle,
    wait_for_quiet,
)
from bench.s3_report import Runs, errors_section, markdown_table, runs_section
from bench.s3_sides import Served, Side, beakerd_side, cluster_side, reference_side
from bench.s3_store import ROOM_PER_BLOB, BucketAdmin, start_seaweedfs
from bench.servers import tree_cpu_seconds

if TYPE_CHECKING:
    from tests.backends.postgres import PostgresServer
    from tests.backends.seaweedfs import SeaweedFS

GIB = 1024 * MIB
RESULTS_PATH = Path(__file__).resolve().parent / "s3_results.md"
SIDES = ("beakerd", "cluster", "reference")
# Stream-mode measurements first (they push what the pulls read), then redirect mode's.
STREAM_PHASE = ("push_monolithic", "push_chunked", "pull_stream", "manifest_get")
REDIRECT_PHASE = ("pull_redirect",)


def cpu_seconds(pids: list[int]) -> float:
    return sum(tree_cpu_seconds(pid) for pid in pids)


def quiet_cpu(groups: list[list[int]], timeout: float = 20.0) -> list[float]:
    """Each group's CPU seconds once no group used more than 5% of a CPU over half a second:
    the work a push leaves behind (a copy finishing, an upload being removed) counts with it."""
    deadline = time.monotonic() + timeout
    now = [cpu_seconds(pids) for pids in groups]
    while True:
        time.sleep(0.5)
        previous, now = now, [cpu_seconds(pids) for pids in groups]
        if all(b - a <= 0.025 for a, b in zip(previous, now, strict=True)):
            return now
        if time.monotonic() > deadline:
            return now


class SideBench:
    """One side's runs across both pull modes: the server of the current phase, and results."""

    def __init__(
        self, side: Side, blob: BlobFile, store: SeaweedFS, admin: BucketAdmin, wrk_duration: int
    ) -> None:
        self.side = side
        self.name = side.name
        self.blob = blob
        self.store = store
        self.admin = admin
        self.wrk_duration = wrk_duration
        self.server: Served | None = None
        self.client: RegistryClient | None = None
        self.results: Runs = {}
        self.last_digest: str | None = None
        self.auth = "none"  # how the client ended up authenticating: none, Basic, Bearer token
        self._variant = 0
        self._manifest_pushed = False

    # -- phases --------------------------------------------------------------------------------

    def start(self, redirect: bool) -> bool:
        """Start this side's server in a pull mode; False (and the error kept) if it would not."""
        if not self.side.keeps_data:
            self.last_digest, self._manifest_pushed = None, False
        try:
            self.server = self.side.start(redirect)
        except Exception as error:
            keys = REDIRECT_PHASE if redirect else STREAM_PHASE
            for key in keys:
                self.results.setdefault(key, f"could not start: {error}")
            log(f"{self.name}: could not start ({'redirect' if redirect else 'stream'}): {error}")
            return False
        self.client = RegistryClient(self.server.url, self.server.username, self.server.password)
        log(f"{self.name}: {self.server.url}, pids {self.server.pids}")
        return True

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.server is not None:
            self.server.stop()
            log(f"stopped {self.name}")
        self.server = self.client = None

    def _client(self) -> RegistryClient:
        assert self.client is not None, "no server running"
        return self.client

    # -- one run -------------------------------------------------------------------------------

    def run_once(self, key: str, run: int) -> None:
        """One timed run of measurement `key`; keeps its values, or the first error."""
        if self.server is None or isinstance(self.results.get(key), str):
            return  # not running, or failed before: later runs would only repeat the error
        try:
            values, note = MEASUREMENTS[key](self)
        except Exception as error:  # one broken measurement must not hide the others
            self.results[key] = f"{type(error).__name__}: {error}"
            log(f"  {self.name:10} {key} run {run}: FAILED: {self.results[key]}")
            self._client().close()  # the connection may be mid-response
            if not self.server.running():
                log(f"  {self.name} died:\n{self.server.log_tail()}")
            return
        for name, value in values.items():
            previous = self.results.setdefault(name, [])
            if isinstance(previous, list):
                previous.append(value)
        scheme = (self._client().authorization or "none").split()[0]
        self.auth = "Bearer token" if scheme == "Bearer" else scheme
        log(f"  {self.name:10} {key} run {run}: {note}")

    def push(self, chunked: bool) -> tuple[dict[str, float], str]:
        assert self.server is not None
        client = self._client()
        self._variant += 1
        digest = self.blob.variant(self._variant)
        client.ensure_login(REPO)  # a fresh token, so no 401 lands mid-body
        settle()
        groups = [self.server.pids, [self.store.proc.pid] if self.store.proc else []]
        server_before, store_before = quiet_cpu(groups)
        start = time.perf_counter()
        if chunked:
            client.push_blob_chunked(REPO, self.blob.whole(), digest, CHUNK_SIZE)
        else:
            client.push_blob_monolithic(REPO, self.blob.whole(), digest)
        seconds = time.perf_counter() - start
        server_after, store_after = quiet_cpu(groups)
        gib = self.blob.size / GIB
        server_cpu = (server_after - server_before) / gib
        store_cpu = (store_after - store_before) / gib
        self._drop_previous(digest)
        rate = mb_per_s(self.blob.size, seconds)
        kind = "chunked" if chunked else "monolithic"
        values = {
            f"push_{kind}": rate,
            f"push_{kind}_server_cpu": server_cpu,
            f"push_{kind}_store_cpu": store_cpu,
            f"push_{kind}_total_cpu": server_cpu + store_cpu,
        }
        return values, (
            f"{rate:,.0f} MB/s ({seconds:.2f} s; CPU per GiB: server {server_cpu:.2f} s, "
            f"SeaweedFS {store_cpu:.2f} s)"
        )

    def _drop_previous(self, digest: str) -> None:
        """Keep only the newest pushed blob in the bucket (the one the pulls read)."""
        previous, self.last_digest = self.last_digest, digest
        if previous is not None and self.side.bucket is not None:
            self.admin.delete_blob(self.side.bucket, previous)
            self.admin.compact()

    def push_monolithic(self) -> tuple[dict[str, float], str]:
        return self.push(chunked=False)

    def push_chunked(self) -> tuple[dict[str, float], str]:
        return self.push(chunked=True)

    def pull(self, redirect: bool) -> tuple[dict[str, float], str]:
        assert self.server is not None
        client = self._client()
        if self.last_digest is None:  # no push run succeeded: push one, untimed
            self._variant += 1
            digest = self.blob.variant(self._variant)
            client.ensure_login(REPO)
            client.push_blob_monolithic(REPO, self.blob.whole(), digest)
            self.last_digest = digest
        client.ensure_login(REPO)
        settle()
        start = time.perf_counter()
        pulled = client.pull_blob_from(REPO, self.last_digest)
        seconds = time.perf_counter() - start
        if pulled.size != self.blob.size:
            raise RegistryError(f"pulled {pulled.size} bytes, expected {self.blob.size}")
        redirected = pulled.source != self.server.url
        if redirected != redirect:
            raise RegistryError(
                f"expected the bytes {'from SeaweedFS' if redirect else 'from the registry'},"
                f" got them from {pulled.source}"
            )
        rate = mb_per_s(pulled.size, seconds)
        key = "pull_redirect" if redirect else "pull_stream"
        return {key: rate}, f"{rate:,.0f} MB/s ({seconds:.2f} s, bytes from {pulled.source})"

    def pull_stream(self) -> tuple[dict[str, float], str]:
        return self.pull(redirect=False)

    def pull_redirect(self) -> tuple[dict[str, float], str]:
        return self.pull(redirect=True)

    def manifest_get(self) -> tuple[dict[str, float], str]:
        assert self.server is not None
        client = self._client()
        if not self._manifest_pushed:
            push_small_image(client)
            self._manifest_pushed = True
        # A fresh token per run: beakerd's tokens are short-lived and wrk cannot renew them.
        client.ensure_login(REPO)
        rate = run_wrk(
            f"{self.server.url}/v2/{REPO}/manifests/latest",
            {"Accept": OCI_MANIFEST, **auth_header(client)},
            self.wrk_duration,
        )
        return {"manifest_get": rate}, f"{rate:,.0f} req/s"


# Measurement key → one timed run: ({result key: value}, line to print).
MEASUREMENTS: dict[str, Callable[[SideBench], tuple[dict[str, float], str]]] = {
    "push_monolithic": SideBench.push_monolithic,
    "push_chunked": SideBench.push_chunked,
    "pull_stream": SideBench.pull_stream,
    "manifest_get": SideBench.manifest_get,
    "pull_redirect": SideBench.pull_redirect,
}


def run_phase(
    benches: list[SideBench], redirect: bool, keys: tuple[str, ...], runs: dict[str, int]
) -> None:
    """Start every side in one pull mode, run `keys` alternating sides run by run, stop them."""
    log(f"\n== {'redirect' if redirect else 'stream'} mode")
    started = [bench for bench in benches if bench.start(redirect)]
    try:
        for key in keys:
            log(f"\n-- {key}")
            for run in range(1, runs[key] + 1):
                order = started if run % 2 else list(reversed(started))
                for bench in order:
                    bench.run_once(key, run)
    finally:
        for bench in started:
            bench.stop()


def tool_version(cmd: list[str]) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def shown_arguments(argv: list[str]) -> list[str]:
    """The command line to repeat a run with, less where its results were written."""
    shown: list[str] = []
    skip = False
    for argument in argv:
        if skip or argument.startswith("--output="):
            skip = False
        elif argument == "--output":
            skip = True
        else:
            shown.append(argument)
    return shown


def header(
    args: argparse.Namespace, sides: list[Side], loads: tuple[float, float], auth: dict[str, str]
) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    registry = tool_version(["docker-registry", "--version"]) or "docker-registry"
    weed = tool_version([str(Path(sys.executable).parent / "weed"), "version"]) or "weed"
    command = " ".join(["python -m bench.s3_bench", *shown_arguments(args.argv)])
    return "\n".join(
        [
            "# beakerd vs reference registry, both on SeaweedFS",
            "",
            f"Run {now} with `{command}` on {os.cpu_count()} CPUs, {platform.platform()},"
            f" Python {platform.python_version()}; reference: {registry}; SeaweedFS: {weed}"
            f" (`weed server -s3`, one process, GOMEMLIMIT={args.weed_memory}).",
            "",
            "- Storage: " + "; ".join(f"{s.name}: {s.storage}" for s in sides) + ".",
            f"- Blob: {args.blob_mib} MiB of random data, a different blob for every push run;"
            " `sync` before each timed push or pull. MB = 10^6 bytes.",
            f"- {args.runs} runs of each push and wrk measurement, {args.pull_runs} of each pull"
            " (a few seconds each), alternating between the sides (all run side by"
            " side on loopback, one under load at a time); the table gives the median run."
            " CPU: utime+stime (children included) of the registry's processes (for the replicas:"
            " theirs, nginx's and PostgreSQL's, which runs with fsync off) and of `weed server`,"
            " read before and after each push once both had gone quiet.",
            "- Pulls: streamed (the reference's `redirect: disable`, beakerd's stream mode), and"
            " by 307 to a presigned SeaweedFS URL, followed on a new connection (time to the last"
            " byte, both requests included). Manifest GET: `wrk -t2 -c32"
            f" -d{args.wrk_duration}s`.",
            f"- The machine's {os.cpu_count()} CPUs were shared with other work: 1-minute load"
            f" average {loads[0]:.2f} at start, {loads[1]:.2f} at the end.",
            "- Auth: " + (", ".join(f"{k}: {v}" for k, v in auth.items()) or "-") + ".",
            "",
            "",
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.s3_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="256 MiB blob, wrk 5 s")
    parser.add_argument(
        "--sides",
        default=",".join(SIDES),
        help=f"comma-separated, of {', '.join(SIDES)} (default: all)",
    )
    parser.add_argument(
        "--beakerd-store",
        choices=["s3", "file"],
        default="s3",
        help="file: one beakerd on its data folder, to check the harness",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of pushes and wrk (default 3)")
    parser.add_argument("--pull-runs", type=int, default=5, help="runs of each pull (default 5)")
    parser.add_argument("--blob-mib", type=int, help="blob size in MiB (default 1024, quick 256)")
    parser.add_argument("--wrk-duration", type=int, help="seconds per wrk run (10, quick 5)")
    parser.add_argument("--weed-memory", default="1GiB", help="GOMEMLIMIT of SeaweedFS (1GiB)")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"Markdown results file (default {RESULTS_PATH} when the reference"
        " and a beakerd side on S3 are both measured)",
    )
    parser.add_argument(
        "--max-load",
        type=float,
        default=1.0,
        help="wait for the 1-minute load average to fall to this (1.0)",
    )
    parser.add_argument(
        "--quiet-timeout",
        type=float,
        default=120,
        help="seconds to wait for that before starting anyway (120)",
    )
    parser.add_argument("--keep-tmp", action="store_true", help="keep data dirs and logs")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    unknown = set(args.sides) - set(SIDES)
    if unknown or not args.sides:
        parser.error(f"--sides: unknown {', '.join(sorted(unknown)) or '(none)'}")
    args.blob_mib = args.blob_mib or (256 if args.quick else 1024)
    args.wrk_duration = args.wrk_duration or (5 if args.quick else 10)
    comparable = "reference" in args.sides and (
        "cluster" in args.sides or args.beakerd_store == "s3"
    )
    if args.output is None and comparable:
        args.output = RESULTS_PATH
    return args


def make_sides(
    args: argparse.Namespace, tmp: Path, store: SeaweedFS, postgres: PostgresServer | None
) -> list[Side]:
    makers: dict[str, Callable[[], Side]] = {
        "beakerd": lambda: beakerd_side(
            tmp / "beakerd", store if args.beakerd_store == "s3" else None
        ),
        "cluster": lambda: cluster_side(tmp / "cluster", store, postgres),
        "reference": lambda: reference_side(tmp / "reference", store),
    }
    return [makers[name]() for name in SIDES if name in args.sides]


def start_postgres(stack: contextlib.ExitStack) -> PostgresServer | None:
    """The cluster's PostgreSQL (tests/backends/postgres.py), stopped with `stack`; None (the
    cluster side then reports why) when it cannot start."""
    from tests.backends.postgres import PostgresServer

    try:
        postgres = PostgresServer().start()
    except Exception as error:
        log(f"PostgreSQL: could not start: {error}")
        return None
    stack.callback(postgres.stop)
    log(f"PostgreSQL: 127.0.0.1:{postgres.port}")
    return postgres


def enough_room(folder: Path, blob_size: int, sides: int) -> bool:
    needed = blob_size * (1 + ROOM_PER_BLOB * sides)
    free = shutil.disk_usage(folder).free
    if free < needed:
        log(f"{folder} has {free / GIB:.1f} GiB free; this run needs {needed / GIB:.1f} GiB")
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    needed = ["wrk"] + (["docker-registry"] if "reference" in args.sides else [])
    needed += ["nginx"] if "cluster" in args.sides else []
    if missing := [tool for tool in needed if shutil.which(tool) is None]:
        log(f"needs {', '.join(missing)} (apt-get install {' '.join(missing)})")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="s3-bench-"))
    if not enough_room(tmp, args.blob_mib * MIB, len(args.sides)):
        tmp.rmdir()
        return 2
    results: dict[str, Runs] = {}
    auth: dict[str, str] = {}
    sides: list[Side] = []
    load_start = wait_for_quiet(args.max_load, args.quiet_timeout)
    try:
        with contextlib.ExitStack() as stack:
            if not args.keep_tmp:
                stack.callback(shutil.rmtree, tmp, True)  # runs last: after the servers stop
            store = start_seaweedfs(tmp / "seaweedfs", args.weed_memory)
            stack.callback(store.stop)
            log(f"SeaweedFS: {store.endpoint}, pid {store.proc.pid if store.proc else '?'}")
            admin = BucketAdmin(store)
            stack.callback(admin.close)
            postgres = start_postgres(stack) if "cluster" in args.sides else None
            sides = make_sides(args, tmp, store, postgres)
            for side in sides:
                if side.bucket is not None:
                    admin.make_bucket(side.bucket)
            log(f"generating a {args.blob_mib} MiB random blob in {tmp}")
            blob = BlobFile(tmp / "blob.bin", args.blob_mib * MIB)
            stack.callback(blob.close)
            benches = [SideBench(s, blob, store, admin, args.wrk_duration) for s in sides]
            for bench in benches:
                stack.callback(bench.stop)  # by PID, on any exit
            runs = {key: args.runs for key in MEASUREMENTS}
            runs.update(pull_stream=args.pull_runs, pull_redirect=args.pull_runs)
            run_phase(benches, False, STREAM_PHASE, runs)
            run_phase(benches, True, REDIRECT_PHASE, runs)
            results = {bench.name: bench.results for bench in benches}
            auth = {bench.name: bench.auth for bench in benches}
    finally:
        if args.keep_tmp:
            log(f"kept {tmp}")
    document = header(args, sides, (load_start, os.getloadavg()[0]), auth)
    document += markdown_table(results) + "\n\nRuns (in order):\n\n" + runs_section(results) + "\n"
    if errors := errors_section(results):
        document += "\nErrors:\n\n" + errors + "\n"
    log("\n" + document)
    if args.output is not None:
        args.output.write_text(document)
        log(f"written to {args.output}")
    failed = any(isinstance(v, str) for runs in results.values() for v in runs.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
