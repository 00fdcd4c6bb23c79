"""Background scrub: re-hash every stored blob at a bounded rate, and take corrupt ones out.

Invariants:
- A blob file whose bytes do not hash to its digest is not served under that digest once the
  scrub has read it: the file moves to `lost+found/` (BlobStore.quarantine), so HEAD and GET
  answer BLOB_UNKNOWN and clients push it again. Its row and links stay, so the first push of
  the right bytes, into any repository, puts a file back under them, and every manifest that
  references the blob works again.
- Only the file that was read is moved: a copy a push put in place since stays (by inode).
- Reading is paced to `rate` bytes per second over the whole pass, in one thread of its own;
  the event loop never waits on a file, and other work keeps the default thread pool.
- A pass goes through the blob rows in digest order and saves how far it got in `scrub.json`
  (data folder) every few seconds, so one cut short by a restart resumes where it stopped; a
  finished pass records when it finished, and the next starts `interval` seconds later.
- One scrub at a time per store (storage/work_lock.py: a lock file, or on PostgreSQL an
  advisory lock across replicas): several workers or replicas take turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from storage.blobs import BlobStore, FileIdentity, identity_of
from storage.database import Database
from storage.digests import Digest, InvalidDigest
from storage.work_lock import one_at_a_time

log = logging.getLogger("beakerd.scrub")

STATE_FILE = "scrub.json"
_CHUNK = 1 << 20
_PAGE = 200
_SAVE_EVERY_SECONDS = 5.0
# How long a worker that found another one scrubbing waits before it looks again.
_BUSY_RETRY_SECONDS = 300.0


class ScrubBusy(RuntimeError):
    """Another process is scrubbing this data folder."""


class Stopped(Exception):
    """The scrub was asked to stop in the middle of a file."""


@dataclass(slots=True)
class ScrubReport:
    blobs: int = 0
    bytes: int = 0
    corrupt: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(slots=True)
class ScrubState:
    after: str = ""  # the last digest checked by the pass in progress; "" when none is
    finished_at: float | None = None

    @classmethod
    def load(cls, path: Path) -> ScrubState:
        try:
            data = json.loads(path.read_text())
            after, finished = data.get("after"), data.get("finished_at")
        except (OSError, ValueError, AttributeError):
            return cls()  # none yet, or unreadable: start over
        return cls(
            after if isinstance(after, str) else "",
            float(finished) if isinstance(finished, int | float) else None,
        )

    def save(self, path: Path) -> None:
        staged = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        staged.write_text(json.dumps({"after": self.after, "finished_at": self.finished_at}))
        os.replace(staged, path)


class Pacer:
    """Keeps a thread's reading at `rate` bytes per second on average since it started."""

    def __init__(self, rate: float, stop: threading.Event) -> None:
        self.rate = rate
        self.stop = stop
        self.started = time.monotonic()
        self.done = 0

    def took(self, size: int) -> None:
        self.done += size
        ahead = self.done / self.rate - (time.monotonic() - self.started)
        if ahead > 0:
            self.stop.wait(ahead)
        if self.stop.is_set():
            raise Stopped


def hash_paced(path: Path, algorithm: str, pacer: Pacer) -> tuple[str, int, FileIdentity] | None:
    """Hex digest, size and identity of the file, read at the pacer's rate; None if absent."""
    hasher = hashlib.new(algorithm)
    size = 0
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return None
    with f:
        identity = identity_of(f.fileno())
        while data := f.read(_CHUNK):
            hasher.update(data)
            size += len(data)
            pacer.took(len(data))
    return hasher.hexdigest(), size, identity


def scrub_lock(db: Database, root: Path) -> contextlib.AbstractAsyncContextManager[None]:
    """The store's scrub lock, or ScrubBusy at once if another process (replica) holds it."""
    return one_at_a_time(db, root, "scrub", ScrubBusy("another process is scrubbing this store"))


class Scrubber:
    def __init__(self, db: Database, root: Path, rate: float) -> None:
        self.db = db
        self.root = root
        self.rate = rate
        self.store = BlobStore(root / "blobs")
        self.state_path = root / STATE_FILE
        self._started = time.time()
        self._stop = threading.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="beakerd-scrub")

    def close(self) -> None:
        """Stop the scrub thread, within one chunk if it is reading."""
        self._stop.set()
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def due_in(self, interval: float) -> float:
        """Seconds until the next pass: none if one was cut short, else `interval` after the
        last one finished (or after this process started, when none ever ran)."""
        state = await asyncio.to_thread(ScrubState.load, self.state_path)
        if state.after:
            return 0.0
        last = state.finished_at if state.finished_at is not None else self._started
        return max(0.0, last + interval - time.time())

    async def scrub(self) -> ScrubReport:
        """One pass, from where the last one stopped; raises ScrubBusy if another is running."""
        started = time.monotonic()
        report = ScrubReport()
        async with scrub_lock(self.db, self.root):
            state = await asyncio.to_thread(ScrubState.load, self.state_path)
            pacer = Pacer(self.rate, self._stop)
            saved = time.monotonic()
            try:
                while rows := await self.db.fetchall(
                    "SELECT digest FROM blobs WHERE digest > ? ORDER BY digest LIMIT ?",
                    (state.after, _PAGE),
                ):
                    for row in rows:
                        await self._check(str(row["digest"]), pacer, report)
                        state.after = str(row["digest"])
                        if time.monotonic() - saved > _SAVE_EVERY_SECONDS:
                            await asyncio.to_thread(state.save, self.state_path)
                            saved = time.monotonic()
                state.after, state.finished_at = "", time.time()
            finally:
                await asyncio.to_thread(state.save, self.state_path)
        report.seconds = time.monotonic() - started
        return report

    async def _check(self, text: str, pacer: Pacer, report: ScrubReport) -> None:
        try:
            digest = Digest.parse(text)
        except InvalidDigest:
            return  # fsck reports malformed rows
        loop = asyncio.get_running_loop()
        path = self.store.path(digest)
        read = await loop.run_in_executor(self._thread, hash_paced, path, digest.algorithm, pacer)
        if read is None:
            return  # collected meanwhile, or already taken out (fsck reports rows without files)
        actual, size, identity = read
        report.blobs += 1
        report.bytes += size
        if actual == digest.hex:
            return
        aside = await self.store.quarantine(digest, identity)
        if aside is not None:
            report.corrupt.append(text)
            log.error(
                "scrub: blob %s is corrupt (its bytes hash to %s:%s): moved to %s;"
                " it answers as unknown until pushed again",
                text, digest.algorithm, actual, aside,
            )  # fmt: skip


async def run_periodically(
    scrubber: Scrubber,
    interval: float,
    on_report: Callable[[ScrubReport], None] = lambda report: None,
) -> None:
    """The server's background scrub: a pass every `interval` seconds (resuming one that a
    restart cut short at once), each pass's report handed to `on_report`."""
    try:
        while True:
            await asyncio.sleep(await scrubber.due_in(interval))
            try:
                report = await scrubber.scrub()
            except ScrubBusy:
                await asyncio.sleep(min(interval, _BUSY_RETRY_SECONDS))
                continue
            except Exception:
                log.exception("scrub: pass failed")
                await asyncio.sleep(min(interval, _BUSY_RETRY_SECONDS))
                continue
            on_report(report)
            log.info(
                "scrub: %d blobs verified (%d bytes) in %.1fs, %d corrupt",
                report.blobs, report.bytes, report.seconds, len(report.corrupt),
            )  # fmt: skip
    finally:
        scrubber.close()
