"""Telling a full disk from other storage failures, whichever layer ran out of space.

The file system says ENOSPC (or EDQUOT, out of quota) on a write, fsync, rename or link;
SQLite says SQLITE_FULL ("database or disk is full") when its WAL or database file cannot grow;
PostgreSQL says disk_full (SQLSTATE 53100) when its own disk does.
Both APIs answer either with 507, and log one line, not a traceback: it is the operator's
problem, not a bug.
"""

from __future__ import annotations

import errno
import sqlite3

import asyncpg

_SQLITE_FULL = 13  # the primary result code; extended codes keep it in their low byte


def disk_full_cause(error: BaseException) -> str | None:
    """What ran out of space, for the log line, or None when `error` is not a full disk."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the file system: {error.strerror or error}"
    if isinstance(error, sqlite3.OperationalError):
        code = getattr(error, "sqlite_errorcode", None)
        if (code is not None and code & 0xFF == _SQLITE_FULL) or "disk is full" in str(error):
            return f"SQLite: {error}"
    if isinstance(error, asyncpg.DiskFullError):
        return f"PostgreSQL: {error}"
    return None
