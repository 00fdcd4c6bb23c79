"""``python -m conformance --url URL [--username U --password P]``: run the suite, print one
line per check, then ``N passed, N failed`` as the last line; exit 0 only if nothing failed."""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import sys
import traceback
from collections.abc import Awaitable, Callable

import aiohttp

from conformance import discovery, management, pull, push
from conformance.client import RegistryClient, SetupError
from conformance.content import SPEC_ERROR_CODES
from conformance.context import Context
from conformance.report import Report

Workflow = Callable[[Context], Awaitable[None]]
WORKFLOWS: dict[str, Workflow] = {
    "pull": pull.run,
    "push": push.run,
    "discovery": discovery.run,
    "management": management.run,
}
_WARNING = re.compile(r'^299 - "[^"]*"$')


async def run_suite(
    url: str,
    username: str | None,
    password: str | None,
    workflows: list[str],
    namespace: str,
    report: Report,
) -> None:
    run_id = secrets.token_hex(4)
    async with RegistryClient(url, username, password) as client:
        for workflow in workflows:
            report.workflow = workflow
            ctx = Context(client, report, f"{namespace}/{run_id}")
            try:
                await WORKFLOWS[workflow](ctx)
            except SetupError as exc:
                report.check("workflow setup", False, str(exc))
            except (aiohttp.ClientError, TimeoutError) as exc:
                report.check("workflow ran to the end", False, f"connection error: {exc!r}")
            except Exception as exc:  # a bug in the suite or a wildly wrong answer
                traceback.print_exc()
                report.check("workflow ran to the end", False, f"unexpected error: {exc!r}")
        report.workflow = "all responses"
        _passive_checks(client, report)


def _passive_checks(client: RegistryClient, report: Report) -> None:
    """Requirements that hold for every response, checked over all the suite saw."""
    bad_errors: list[str] = []
    for resp in client.responses:
        if not 400 <= resp.status < 500:
            continue
        codes = resp.error_codes()
        if codes is None:
            continue  # a 4xx body may be in any format; only JSON ones are constrained
        if not codes or any(code not in SPEC_ERROR_CODES for code in codes):
            bad_errors.append(f"{resp.describe()} body {resp.body[:120]!r}")
    report.check(
        "Every JSON 4xx body is {errors: [{code, ...}]} with codes from the spec's table",
        not bad_errors,
        "; ".join(bad_errors[:5]) or f"{len(client.responses)} responses seen",
    )

    bad_warnings = [
        f"{resp.describe()} Warning: {w}"
        for resp in client.responses
        for w in resp.headers.getall("Warning", [])
        if not _WARNING.match(w.strip())
    ]
    report.check(
        'Warning headers use warn-code 299 and warn-agent "-", without a date',
        not bad_warnings,
        "; ".join(bad_warnings[:5]) or "none malformed",
    )

    no_challenge = [
        r.describe()
        for r in client.responses
        if r.status == 401 and not r.header("WWW-Authenticate")
    ]
    report.check(
        "Every 401 carries a WWW-Authenticate challenge",
        not no_challenge,
        "; ".join(no_challenge[:5]) or "none missing",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conformance",
        description="OCI Distribution Specification v1.1 conformance checks against a registry.",
    )
    parser.add_argument(
        "--url", required=True, help="registry base URL, e.g. http://127.0.0.1:5000"
    )
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument(
        "--workflow",
        action="append",
        choices=sorted(WORKFLOWS),
        help="run only this workflow (repeatable); default: all four",
    )
    parser.add_argument(
        "--namespace",
        help="repository prefix; each run adds a random component under it"
        " (default: the --username, whose namespace an account may push; else conformance)",
    )
    args = parser.parse_args(argv)
    namespace = args.namespace or args.username or "conformance"
    workflows = args.workflow or list(WORKFLOWS)
    report = Report()
    asyncio.run(run_suite(args.url, args.username, args.password, workflows, namespace, report))
    print(report.summary(), flush=True)
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
