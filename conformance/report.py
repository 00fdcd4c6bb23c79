"""Check results: each requirement becomes one PASS/FAIL line, and the last line is the tally."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TextIO

from conformance.client import Response


class Level(StrEnum):
    """The RFC 2119 strength of the requirement a check proves."""

    MUST = "MUST"
    SHOULD = "SHOULD"


@dataclass(frozen=True)
class CheckResult:
    workflow: str
    name: str
    level: Level
    passed: bool
    reason: str

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict} [{self.workflow}] {self.level} {self.name}: {self.reason}"


class Report:
    """Collects check results and prints each one as soon as it is known."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out if out is not None else sys.stdout
        self.results: list[CheckResult] = []
        self.workflow = "base"

    def check(self, name: str, passed: bool, reason: str, level: Level = Level.MUST) -> bool:
        result = CheckResult(self.workflow, name, level, passed, reason)
        self.results.append(result)
        print(result.line(), file=self._out, flush=True)
        return passed

    def status(
        self,
        name: str,
        resp: Response,
        expected: int | Iterable[int],
        level: Level = Level.MUST,
    ) -> bool:
        """Check a response's status code, with the request and any error codes as the reason."""
        wanted = {expected} if isinstance(expected, int) else set(expected)
        ok = resp.status in wanted
        want = "/".join(str(s) for s in sorted(wanted))
        reason = resp.describe() if ok else f"{resp.describe()}, expected {want}"
        return self.check(name, ok, reason, level)

    def header_equals(
        self,
        name: str,
        resp: Response,
        header: str,
        expected: str,
        level: Level = Level.MUST,
        normalize: Callable[[str], str] = lambda v: v,
    ) -> bool:
        value = resp.header(header)
        if value is None:
            return self.check(name, False, f"{resp.describe()} has no {header} header", level)
        ok = normalize(value) == normalize(expected)
        reason = f"{header}: {value}" + ("" if ok else f", expected {expected}")
        return self.check(name, ok, reason, level)

    def error_code(
        self,
        name: str,
        resp: Response,
        codes: Iterable[str],
        level: Level = Level.MUST,
    ) -> bool:
        """Check that a JSON error body names one of `codes` (a non-JSON body passes: the spec
        lets a 4xx body be in any format, and only constrains JSON ones)."""
        wanted = sorted(set(codes))
        found = resp.error_codes()
        if found is None:
            return self.check(name, True, f"{resp.describe()}, body is not JSON", level)
        ok = any(code in wanted for code in found)
        reason = f"error codes {found}" + ("" if ok else f", expected one of {wanted}")
        return self.check(name, ok, reason, level)

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.passed)

    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed"
