"""One access-log line and the request metrics, per request, from aiohttp's access-log hook.

aiohttp calls `AccessLogger.log(request, response, elapsed)` after each response is fully
written (also for responses cut short by the client), so this is the one place that sees the
final status and the bytes actually sent, at no cost to the handlers: no middleware frame and
no extra await on the hot path.

The account: whichever API authenticated the caller (registry/auth.py, metadata/http.py)
records its name under `ACCOUNT_NAME` (registry/access.py); nothing is looked up here.

Lines have the shapes beakerd/logging_setup.py gives every record (text or JSON, chosen by
`--log-format`), but skip the logging machinery: they are formatted here and written to stderr
in batches, at most 0.1 s late. A LogRecord and a write per request cost about 40 us, which
is a fifth of a cached manifest GET. A request whose client hung up before its answer
(beakerd/disconnects.py) is logged as "client closed the connection" and counted apart from
the answered ones. `--no-access-log` (or a level above info on the
`beakerd.access` logger) turns the lines off; the metrics stay.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime as dt
import json
import logging
import os
import sys
import time

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_fileresponse import FileResponse
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from beakerd import metrics
from beakerd.disconnects import CLIENT_CLOSED
from registry.access import ACCOUNT_NAME

ACCESS_LOGGER = "beakerd.access"
UNMATCHED_ROUTE = "unmatched"

# Route pattern per resource object: computed once, since `canonical` builds a string.
_route_names: dict[int, str] = {}


def route_pattern(request: BaseRequest) -> str:
    """The pattern of the route that matched (`/v2/{name}/manifests/{reference}`), bounded."""
    match_info = getattr(request, "_match_info", None)
    if match_info is None:
        return UNMATCHED_ROUTE
    resource = match_info.route.resource
    if resource is None:
        return UNMATCHED_ROUTE
    key = id(resource)
    name = _route_names.get(key)
    if name is None:
        name = _route_names[key] = resource.canonical
    return name


def account_of(request: BaseRequest) -> str | None:
    """The caller's account name, if the auth layers recorded one on the request."""
    return request.get(ACCOUNT_NAME)


def bytes_sent(request: BaseRequest, response: StreamResponse) -> int:
    sent = response.body_length
    # A FileResponse over plain HTTP goes out by sendfile, which the writer does not count.
    if isinstance(response, FileResponse) and request.method != "HEAD":
        length = response.content_length or 0
        if sent < length:
            sent += length
    return sent


class _Lines:
    """Access lines waiting to be written: batched, because a write (and a logging.LogRecord)
    per request would cost more than serving a cached manifest. Flushed within FLUSH_SECONDS,
    when MAX_PENDING lines wait, and at shutdown."""

    FLUSH_SECONDS = 0.1
    MAX_PENDING = 256

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.scheduled = False

    def add(self, line: str) -> None:
        pending = self.pending
        pending.append(line)
        if len(pending) >= self.MAX_PENDING:
            self.flush()
        elif not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        self.scheduled = False
        if not self.pending:
            return
        text = "".join(self.pending)
        self.pending.clear()
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # stderr gone: nowhere left to log to


_lines = _Lines()
atexit.register(_lines.flush)


def flush() -> None:
    """Write out the access lines still waiting (the server calls this as it stops)."""
    _lines.flush()


class _Clock:
    """`logging`'s asctime (`2026-11-27 07:31:55,201`), formatting the date once a second."""

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""

    def asctime(self, now: float) -> str:
        second = int(now)
        if second != self.second:
            self.second = second
            self.prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self.prefix},{int((now - second) * 1000):03d}"


_clock = _Clock()


class AccessLogger(AbstractAccessLogger):
    """Records request metrics always; writes the access line when `beakerd.access` is on.

    aiohttp makes one per connection, passing `access_log_format`: here "text" or "json",
    the same shapes as beakerd/logging_setup.py gives every other record.
    """

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self.json = log_format == "json"
        self.pid = os.getpid()

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        route = route_pattern(request)
        method = request.method
        status = response.status
        received = getattr(request.content, "total_bytes", 0)
        labels = (route,)
        if received:
            metrics.http_request_bytes.inc(received, labels)
        if status == CLIENT_CLOSED:
            sent = 0
            metrics.http_client_disconnects.inc(1.0, (route, method))
        else:
            sent = bytes_sent(request, response)
            metrics.http_requests.inc(1.0, (route, method, str(status)))
            metrics.http_response_bytes.inc(sent, labels)
            metrics.http_duration.observe(time, (route, method))
        if not self.logger.isEnabledFor(logging.INFO):
            return
        account = account_of(request)
        duration_ms = round(time * 1000.0, 2)
        path = request.raw_path
        outcome = "client closed the connection" if status == CLIENT_CLOSED else f"{status} {sent}B"
        message = f"{method} {path} {outcome} {duration_ms:.2f}ms account={account or '-'}"
        if self.json:
            line = json.dumps(
                {
                    "time": _iso_time(),
                    "level": "info",
                    "logger": ACCESS_LOGGER,
                    "pid": self.pid,
                    "message": message,
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "bytes_in": received,
                    "bytes_out": sent,
                    "duration_ms": duration_ms,
                    "account": account,
                    "remote": request.remote,
                },
                separators=(",", ":"),
            )
        else:
            line = f"{_clock.asctime(_now())} INFO {ACCESS_LOGGER}[{self.pid}]: {message}"
        _lines.add(line + "\n")


def _now() -> float:
    return time.time()


def _iso_time() -> str:
    now = dt.datetime.now(dt.UTC)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def access_logger(enabled: bool) -> logging.Logger:
    """The logger handed to aiohttp; when disabled, lines are dropped but metrics still kept."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not enabled:
        logger.setLevel(logging.WARNING)
    return logger
