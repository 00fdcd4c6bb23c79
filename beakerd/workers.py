"""Serving: one process, or `--workers N` processes on one port (SO_REUSEPORT), supervised.

With N workers the parent process
1. checks that the port is free (a plain bind: SO_REUSEPORT alone would let a second beakerd
   silently share the port) and, for port 0, picks one; a taken port is one line on stderr
   and exit status 2, as with one process;
2. prepares the data folder once by starting and stopping the app without serving: folders,
   the signing key, database migrations and the first-start bootstrap all happen here, so
   workers never race to create them (each is idempotent and race-tolerant anyway);
3. forks N workers (no threads are left by then: asyncio.run has joined its executor and the
   database connections are closed), each binding its own SO_REUSEPORT listener; the kernel
   spreads connections over them;
4. supervises: a worker that dies is replaced (unless workers keep dying right after start, as
   when the port is taken: then everything stops with exit status 1); SIGTERM or SIGINT is
   passed to every worker, which stops accepting, lets requests in flight finish within
   `shutdown_grace_seconds`, and exits. After that plus a margin, stragglers get SIGKILL.
   Each worker sends SIGUSR1 once it listens; "listening" is logged when all of them have.

Each process raises its file-descriptor limit and serves through beakerd/listener.py and
beakerd/connections.py: a connection cap, a deadline for request heads, idle keep-alive
connections closed after `keepalive_timeout_seconds`.

What is shared between workers is shared through the data folder: SQLite in WAL mode with a
busy timeout (storage/database.py), the mmap'd change counter (storage/generation_file.py),
upload offsets in the database (any worker continues an upload; see storage/uploads.py), and
metric snapshots (beakerd/metrics.py). On PostgreSQL the counter, the signing key and the GC
and scrub locks live in the database instead (storage/generation.py, storage/work_lock.py),
which is what lets replicas on several machines serve one store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from beakerd import access_log, connections, health, metrics
from beakerd.access_log import AccessLogger, access_logger
from beakerd.connections import ConnectionTable, Limits
from beakerd.listener import GuardedSite, ListenError, bind
from beakerd.settings import Settings

log = logging.getLogger("beakerd.workers")

AppFactory = Callable[[], web.Application]
OnListening = Callable[[web.BaseSite], None]

# A worker that exits this soon after starting counts as failing to start.
_QUICK_EXIT_SECONDS = 5.0
# Give up after this many quick exits in a row.
_MAX_QUICK_EXITS = 3
# Time past the grace period before workers still running are killed.
_KILL_MARGIN_SECONDS = 10.0
# A worker tells the supervisor it listens with SIGUSR1.
_LISTENING_SIGNAL = signal.SIGUSR1
_SUPERVISOR_SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, _LISTENING_SIGNAL}
# Shutdown: how often to look whether requests in flight are done, and how long handlers
# still running at the end of the grace time get to clean up after being cancelled.
_DRAIN_POLL_SECONDS = 0.05
_CANCEL_SECONDS = 2.0
# Whether this process serves the app (run_server): not so in the supervisor, which only
# prepares the data folder, nor where tests drive the app in-process. The gRPC server
# (beakerd/grpc_server.py) starts only where this is true: gRPC must not run before a fork.
_serving = False


def serving() -> bool:
    return _serving


def run_server(
    app: web.Application,
    settings: Settings,
    ssl_context: ssl.SSLContext | None,
    *,
    reuse_port: bool = False,
    on_listening: OnListening,
) -> None:
    """Serve `app` until SIGTERM/SIGINT, then shut down gracefully.

    Raises ListenError, before the app starts, when the address cannot be listened on.
    """
    global _serving
    _serving = True
    asyncio.run(_serve_until_signalled(app, settings, ssl_context, reuse_port, on_listening))


async def _serve_until_signalled(
    app: web.Application,
    settings: Settings,
    ssl_context: ssl.SSLContext | None,
    reuse_port: bool,
    on_listening: OnListening,
) -> None:
    listeners = bind(settings.host, settings.port, reuse_port=reuse_port)
    # Not web.run_app: it raises out of the loop on every SIGTERM, so a second one (systemd and
    # `timeout` signal the whole process group, and the supervisor signals each worker too)
    # would cut the graceful shutdown short. Here further signals just find the event set.
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=access_logger(settings.access_log),
        access_log_class=AccessLogger,
        access_log_format=settings.log_format,
        # What handlers still running after the grace time (see _drain) get to finish being
        # cancelled; then their connections are closed.
        shutdown_timeout=_CANCEL_SECONDS,
        keepalive_timeout=settings.keepalive_timeout_seconds,
    )
    try:
        await runner.setup()
    except BaseException:
        for listener in listeners:
            listener.close()
        # The contexts that did start (the database's among them) are closed again: a thread
        # left running would keep the process from exiting.
        await runner.cleanup()
        raise
    try:
        assert runner.server is not None
        table = ConnectionTable(runner.server, _limits(settings), ssl_context)
        site = GuardedSite(runner, listeners, table, ssl_context)
        await site.start()
        on_listening(site)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info(
            "shutting down: finishing requests in flight (up to %gs)",
            settings.shutdown_grace_seconds,
        )
        await _drain(runner, settings.shutdown_grace_seconds)
    finally:
        await runner.cleanup()
        access_log.flush()


async def _drain(runner: web.AppRunner, grace: float) -> None:
    """Stop accepting; give requests in flight up to `grace` seconds to finish.

    aiohttp's own graceful shutdown (runner.cleanup) marks every connection closing, after
    which it drops incoming bytes: an upload whose body is still arriving would stall and be
    cut off however long the grace. So: close the listeners, close idle keep-alive connections
    (again each round, as requests finish), and leave busy ones alone until they are done or
    the grace time is up. Then runner.cleanup cancels what is left: an upload chunk cut off
    that way is not acknowledged, and its session stays at its last acknowledged offset.
    """
    draining = runner.app.get(health.DRAINING)
    if draining is not None:
        draining.append(True)  # /readyz answers 503 on connections still open
    for site in list(runner.sites):
        await site.stop()
    server = runner.server
    if server is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while True:
        busy = 0
        for conn in list(server.connections):
            # aiohttp has no public "is this connection handling a request" flag.
            if getattr(conn, "_request_in_progress", False):
                busy += 1
            else:
                conn.close()
        if not busy:
            return
        if loop.time() >= deadline:
            log.warning("grace time over: cutting off %d requests in flight", busy)
            return
        await asyncio.sleep(_DRAIN_POLL_SECONDS)


def _limits(settings: Settings) -> Limits:
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return Limits(
        cap=connections.connection_cap(settings.max_connections, fd_limit),
        header_read_timeout=settings.header_read_timeout_seconds,
    )


def _announce_limits(settings: Settings) -> None:
    fd_limit = connections.raise_fd_limit()
    cap = _limits(settings).cap
    if cap < settings.max_connections:
        log.info(
            "at most %d connections per process (not max_connections %d): the file descriptor"
            " limit is %d",
            cap,
            settings.max_connections,
            fd_limit,
        )


def _log_listening(site: web.BaseSite, settings: Settings) -> None:
    log.info("beakerd listening on %s, data in %s", site.name, settings.data_dir)


def _cannot_listen(problem: ListenError) -> int:
    print(f"beakerd: {problem}", file=sys.stderr, flush=True)
    return 2


def serve(settings: Settings, make_app: AppFactory, ssl_context: ssl.SSLContext | None) -> int:
    """Run `settings.workers` server processes; returns the exit status."""
    _announce_limits(settings)
    if settings.workers <= 1:
        try:
            run_server(
                make_app(),
                settings,
                ssl_context,
                on_listening=lambda site: _log_listening(site, settings),
            )
        except ListenError as e:  # the port is taken, or the address is not ours
            return _cannot_listen(e)
        return 0
    try:
        settings = _claim_port(settings)
    except ListenError as e:
        return _cannot_listen(e)
    asyncio.run(_prepare(make_app()))
    _clear_metric_snapshots(settings)
    return Supervisor(settings, make_app, ssl_context).run()


def _claim_port(settings: Settings) -> Settings:
    """Fail now if the port is taken; choose one for port 0 (every worker must use the same)."""
    probes = bind(settings.host, settings.port)
    port = int(probes[0].getsockname()[1])
    for probe in probes:
        probe.close()
    return settings if port == settings.port else settings.model_copy(update={"port": port})


async def _prepare(app: web.Application) -> None:
    """Start the app's storage without serving, then stop it: the one-time setup happens here."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await runner.cleanup()


def _clear_metric_snapshots(settings: Settings) -> None:
    folder = metrics.snapshot_folder(settings.data_dir)
    for stale in folder.glob("worker-*") if folder.exists() else ():
        stale.unlink(missing_ok=True)


@dataclass
class _Worker:
    index: int
    pid: int
    started: float


class Supervisor:
    def __init__(
        self, settings: Settings, make_app: AppFactory, ssl_context: ssl.SSLContext | None
    ) -> None:
        self.settings = settings
        self.make_app = make_app
        self.ssl_context = ssl_context
        self.workers: dict[int, _Worker] = {}  # by pid
        self.quick_exits = 0
        self.listening = 0  # workers that said they listen

    def run(self) -> int:
        # Signals are taken synchronously with sigtimedwait: no handler runs at a random point.
        signal.pthread_sigmask(signal.SIG_BLOCK, _SUPERVISOR_SIGNALS)
        log.info(
            "starting %d workers on %s (supervisor pid %d)",
            self.settings.workers,
            self.settings.listen_address,
            os.getpid(),
        )
        for index in range(self.settings.workers):
            self._spawn(index)
        status = 0
        while True:
            info = signal.sigtimedwait(_SUPERVISOR_SIGNALS, 1.0)
            if info is None:
                continue
            if info.si_signo == _LISTENING_SIGNAL:
                self._worker_listening()
                continue
            if info.si_signo in (signal.SIGTERM, signal.SIGINT):
                log.info("stopping %d workers", len(self.workers))
                break
            if not self._reap_and_replace():
                status = 1
                break
        self._stop_all()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SUPERVISOR_SIGNALS)
        return status

    def _worker_listening(self) -> None:
        self.listening += 1
        if self.listening == self.settings.workers:
            log.info(
                "beakerd listening on %s://%s with %d workers, data in %s",
                self.settings.url_scheme,
                self.settings.listen_address,
                self.settings.workers,
                self.settings.data_dir,
            )

    def _spawn(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(self._worker_main(index))
        self.workers[pid] = _Worker(index, pid, time.monotonic())

    def _worker_main(self, index: int) -> int:
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            for sig in _SUPERVISOR_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            metrics.reset()
            metrics.join_workers(index, self.settings.data_dir)
            supervisor = os.getppid()
            run_server(
                self.make_app(),
                self.settings,
                self.ssl_context,
                reuse_port=True,
                on_listening=lambda _: os.kill(supervisor, _LISTENING_SIGNAL),
            )
            return 0
        except ListenError as e:
            log.error("worker %d: %s", index, e)
            return 2
        except Exception:
            log.exception("worker %d failed", index)
            return 1
        finally:
            logging.shutdown()

    def _reap_and_replace(self) -> bool:
        """Collect exited workers and start new ones; False when workers cannot start."""
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            lived = time.monotonic() - worker.started
            log.warning(
                "worker %d (pid %d) exited (%s) after %.1fs; starting another",
                worker.index,
                pid,
                _describe(status),
                lived,
            )
            self.quick_exits = self.quick_exits + 1 if lived < _QUICK_EXIT_SECONDS else 0
            if self.quick_exits >= _MAX_QUICK_EXITS:
                log.error("workers keep exiting right after start; stopping")
                return False
            self._spawn(worker.index)
        return True

    def _stop_all(self) -> None:
        for pid in list(self.workers):
            _signal(pid, signal.SIGTERM)
        deadline = (
            time.monotonic()
            + self.settings.shutdown_grace_seconds
            + _CANCEL_SECONDS
            + _KILL_MARGIN_SECONDS
        )
        while self.workers:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                self.workers.pop(pid, None)
                continue
            if time.monotonic() > deadline:
                for straggler in list(self.workers):
                    log.warning("worker pid %d did not stop in time; killing it", straggler)
                    _signal(straggler, signal.SIGKILL)
                deadline = float("inf")
            signal.sigtimedwait({signal.SIGCHLD}, 0.2)
        log.info("all workers stopped")


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"status {os.waitstatus_to_exitcode(status)}"
