"""The one exception the commands raise to stop with a message (never a traceback)."""

from __future__ import annotations


class CliError(Exception):
    """A failure to report as `Error: <message>` on stderr, exiting with `exit_code`."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message
