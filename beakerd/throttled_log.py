"""A log line for an event that can recur thousands of times a second: at most one per interval.

The first occurrence is logged at once; later ones within the interval are counted, and the
count is logged when the interval ends (then a new interval starts if they go on). A flood of
refused connections or failed accepts thus costs a few lines a minute, yet none goes unseen.
"""

from __future__ import annotations

import asyncio
import logging

DEFAULT_INTERVAL_SECONDS = 10.0


class Throttled:
    """One event's log line, at most once per `interval` seconds (needs a running loop)."""

    def __init__(
        self,
        logger: logging.Logger,
        message: str,
        *,
        level: int = logging.WARNING,
        interval: float = DEFAULT_INTERVAL_SECONDS,
    ) -> None:
        self.logger = logger
        self.message = message
        self.level = level
        self.interval = interval
        self.suppressed = 0
        self.args: tuple[object, ...] = ()
        self.window: asyncio.TimerHandle | None = None

    def note(self, *args: object) -> None:
        """The event happened once more; `args` fill the message's %-placeholders."""
        if self.window is None:
            self.logger.log(self.level, self.message, *args)
            self._open_window(args)
        else:
            self.suppressed += 1
            self.args = args

    def _open_window(self, args: tuple[object, ...]) -> None:
        self.args = args
        loop = asyncio.get_running_loop()
        self.window = loop.call_later(self.interval, self._close_window)

    def _close_window(self) -> None:
        self.window = None
        if not self.suppressed:
            return
        count, self.suppressed = self.suppressed, 0
        self.logger.log(
            self.level,
            self.message + " (%d more times in the last %gs)",
            *self.args,
            count,
            self.interval,
        )
        self._open_window(self.args)

    def cancel(self) -> None:
        if self.window is not None:
            self.window.cancel()
            self.window = None
