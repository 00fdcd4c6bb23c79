"""Retention: the tags and untagged manifests the repository policies say should go.

For each policy (storage/policies.py) over the repositories it covers:
- among tags matching `tags`, those past the newest `keep_newest` (by when they were last
  pushed) and, when `tags_older_than` is set too, only those older than it; with
  `tags_older_than` alone, every matching tag older than it;
- with `untagged_older_than`: manifests created before then that no tag, no live index (its
  child) and no live manifest (its referrer, by subject) holds, the tags this pass removes
  already gone.

Never touched: repositories of committed Beaker images (read-only), and tags an immutable-tag
rule protects. The doomed rows are found in SQL and removed in the same transaction (so a push
landing meanwhile is seen or waits), each removal queued as a `delete` webhook event; a dry run
is the same transaction rolled back, so it lists exactly what a pass would remove now. Blobs
and manifest bytes freed this way go at the next garbage collection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from storage.database import Connection, Database
from storage.outbox import Outbox
from storage.policies import Policies, Policy, glob_parameter, glob_sql

log = logging.getLogger("beakerd.retention")


@dataclass(frozen=True, slots=True)
class DoomedTag:
    repository: str
    tag: str
    digest: str
    policy: str


@dataclass(frozen=True, slots=True)
class DoomedManifest:
    repository: str
    digest: str
    policy: str


@dataclass
class RetentionReport:
    dry_run: bool
    tags: list[DoomedTag] = field(default_factory=list)
    manifests: list[DoomedManifest] = field(default_factory=list)

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return f"retention: {verb} {len(self.tags)} tags and {len(self.manifests)} manifests"

    def lines(self) -> list[str]:
        return [f"tag {t.repository}:{t.tag} ({t.digest}) by {t.policy}" for t in self.tags] + [
            f"manifest {m.repository}@{m.digest} by {m.policy}" for m in self.manifests
        ]


class _DryRun(Exception):
    """Rolls the pass's transaction back."""


class Retention:
    def __init__(
        self,
        db: Database,
        policies: Policies,
        events: Outbox | None = None,
        on_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.policies = policies
        self.events = events or Outbox(db)
        # Called after a pass removed something, so read caches drop it.
        self.on_change = on_change

    async def apply(self, dry_run: bool = False, now: float | None = None) -> RetentionReport:
        report = RetentionReport(dry_run=dry_run)
        now = time.time() if now is None else now
        try:
            async with self.db.transaction() as conn:
                policies = await self.policies.all(conn)
                for policy in policies:
                    if policy.retains:
                        await self._apply_policy(conn, policy, policies, now, report)
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        if not dry_run and (report.tags or report.manifests) and self.on_change:
            await self.on_change()
        return report

    async def _apply_policy(
        self,
        conn: Connection,
        policy: Policy,
        policies: list[Policy],
        now: float,
        report: RetentionReport,
    ) -> None:
        dialect = self.db.dialect
        repos = glob_parameter(dialect, policy.repositories)
        if policy.keep_newest is not None or policy.tags_older_than is not None:
            tags = await self._doomed_tags(conn, policy, now)
            # An immutable-tag rule, of this policy or any other covering the repository, wins.
            tags = [
                (repo_id, t)
                for repo_id, t in tags
                if not any(p.covers(t.repository) and p.immutable_rule(t.tag) for p in policies)
            ]
            await conn.executemany(
                "DELETE FROM tags WHERE repository_id = ? AND name = ?",
                [(repo_id, t.tag) for repo_id, t in tags],
            )
            for _, t in tags:
                await self.events.record(
                    conn,
                    "delete",
                    {"repository": t.repository, "tag": t.tag, "digest": None, "by": "retention"},
                )
            report.tags += [t for _, t in tags]
        if policy.untagged_older_than is not None:
            rows = await conn.execute_fetchall(
                _UNTAGGED.format(repos=glob_sql(dialect, "r.name")),
                (repos, now - policy.untagged_older_than, now - policy.untagged_older_than),
            )
            manifests = [(int(r[0]), str(r[1]), str(r[2])) for r in rows]
            # References and any tags go with them (ON DELETE CASCADE); there are no tags.
            await conn.executemany(
                "DELETE FROM manifests WHERE repository_id = ? AND digest = ?",
                [(repo_id, digest) for repo_id, _, digest in manifests],
            )
            for _, name, digest in manifests:
                await self.events.record(
                    conn,
                    "delete",
                    {"repository": name, "tag": None, "digest": digest, "by": "retention"},
                )
            report.manifests += [DoomedManifest(n, d, policy.repositories) for _, n, d in manifests]

    async def _doomed_tags(
        self, conn: Connection, policy: Policy, now: float
    ) -> list[tuple[int, DoomedTag]]:
        dialect = self.db.dialect
        conditions: list[str] = []
        params: list[float] = []
        if policy.keep_newest is not None:
            conditions.append("ranked.newest > ?")
            params.append(policy.keep_newest)
        if policy.tags_older_than is not None:
            conditions.append("ranked.updated_at < ?")
            params.append(now - policy.tags_older_than)
        rows = await conn.execute_fetchall(
            _RANKED_TAGS.format(
                repos=glob_sql(dialect, "r.name"),
                tags=glob_sql(dialect, "t.name"),
                doomed=" AND ".join(conditions),
            ),
            (
                glob_parameter(dialect, policy.repositories),
                glob_parameter(dialect, policy.tags),
                *params,
            ),
        )
        return [
            (int(r[0]), DoomedTag(str(r[1]), str(r[2]), str(r[3]), policy.repositories))
            for r in rows
        ]


# Matching tags of writable covered repositories, numbered from the newest in each.
_RANKED_TAGS = """
SELECT ranked.repository_id, ranked.repository, ranked.name, ranked.digest FROM (
    SELECT t.repository_id, r.name AS repository, t.name, t.digest, t.updated_at,
        ROW_NUMBER() OVER (
            PARTITION BY t.repository_id ORDER BY t.updated_at DESC, t.name DESC
        ) AS newest
    FROM tags t JOIN repositories r ON r.id = t.repository_id
    WHERE r.immutable = 0 AND {repos} AND {tags}
) ranked
WHERE {doomed}
ORDER BY ranked.repository, ranked.name
"""

# Manifests of writable covered repositories created before the cutoff that nothing live holds.
# `live` starts from the tags and the manifests newer than the cutoff, and follows `edges`
# (index to entry, subject to referrer) within a repository. The one recursive reference comes
# last, as PostgreSQL requires.
_UNTAGGED = """
WITH RECURSIVE covered (id, name) AS (
    SELECT id, name FROM repositories r WHERE r.immutable = 0 AND {repos}
), edges (repository_id, parent, child) AS (
    SELECT mr.repository_id, mr.manifest_digest, mr.child_digest FROM manifest_references mr
        JOIN covered c ON c.id = mr.repository_id WHERE mr.child_is_manifest = 1
    UNION ALL SELECT m.repository_id, m.subject, m.digest FROM manifests m
        JOIN covered c ON c.id = m.repository_id WHERE m.subject IS NOT NULL
), live (repository_id, digest) AS (
    SELECT t.repository_id, t.digest FROM tags t JOIN covered c ON c.id = t.repository_id
    UNION SELECT m.repository_id, m.digest FROM manifests m
        JOIN covered c ON c.id = m.repository_id WHERE m.created_at >= ?
    UNION SELECT e.repository_id, e.child FROM edges e
        JOIN live l ON l.repository_id = e.repository_id AND l.digest = e.parent
)
SELECT m.repository_id, c.name, m.digest FROM manifests m JOIN covered c ON c.id = m.repository_id
WHERE m.created_at < ? AND NOT EXISTS (
    SELECT 1 FROM live l WHERE l.repository_id = m.repository_id AND l.digest = m.digest
)
ORDER BY c.name, m.digest
"""


async def run_periodically(
    retention: Retention,
    interval: float,
    on_report: Callable[[RetentionReport], None] = lambda report: None,
) -> None:
    """The server's background pass, beside garbage collection's."""
    while True:
        await asyncio.sleep(interval)
        try:
            report = await retention.apply()
        except Exception:
            log.exception("retention: pass failed")
            continue
        on_report(report)
        log.log(
            logging.INFO if report.tags or report.manifests else logging.DEBUG,
            "%s",
            report.summary(),
        )
