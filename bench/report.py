"""The tables of the benchmarks, in Markdown: beakerd beside the reference (metric | beakerd |
reference | ratio | target | result), or beakerd alone (metric | value | target | result)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Per-server measurements: metric key → value, or an error message when the measurement failed.
Measurements = dict[str, float | str]


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    # Given (beakerd, reference), whether the target is met; None: no target.
    check: Callable[[float, float | None], bool] | None
    target: str
    # False: show both values but no ratio (RSS is an absolute budget, not a race).
    show_ratio: bool = True
    needs_reference: bool = True


METRICS: list[Metric] = [
    Metric(
        "push_monolithic",
        "blob push, monolithic (POST + PUT)",
        "MB/s",
        lambda b, r: r is not None and b >= 1.5 * r,
        ">= 1.5x ref",
    ),
    Metric(
        "push_chunked",
        "blob push, chunked (16 MiB PATCH)",
        "MB/s",
        lambda b, r: r is not None and b >= 1.5 * r,
        ">= 1.5x ref",
    ),
    Metric(
        "push_monolithic_cpu",
        "server CPU per GB pushed, monolithic",
        "s",
        None,
        "info, lower is better",
    ),
    Metric(
        "push_chunked_cpu",
        "server CPU per GB pushed, chunked",
        "s",
        None,
        "info, lower is better",
    ),
    Metric("pull", "blob pull (GET)", "MB/s", lambda b, r: r is not None and b >= r, ">= 1x ref"),
    Metric(
        "manifest_get",
        "manifest GET, wrk -c32",
        "req/s",
        lambda b, r: r is not None and b >= 4 * r,
        ">= 4x ref",
    ),
    Metric(
        "push_peak_rss",
        "server peak RSS during push",
        "MiB",
        lambda b, _r: b < 150,
        "beakerd < 150 MiB",
        show_ratio=False,
        needs_reference=False,
    ),
]


def cell(value: float | str | None, unit: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return "error"
    if value >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:,.1f} {unit}" if value >= 10 else f"{value:,.2f} {unit}"


def markdown_table(beakerd: Measurements | None, reference: Measurements | None) -> str:
    rows = [
        "| metric | beakerd | reference | ratio | target | result |",
        "|---|---:|---:|---:|---|---|",
    ]
    for metric in METRICS:
        b = beakerd.get(metric.key) if beakerd is not None else None
        r = reference.get(metric.key) if reference is not None else None
        ratio = "-"
        result = "-"
        b_num = b if isinstance(b, float) else None
        r_num = r if isinstance(r, float) else None
        if metric.show_ratio and b_num is not None and r_num:
            ratio = f"{b_num / r_num:.2f}x"
        if metric.check is not None and b_num is not None:
            if r_num is not None or not metric.needs_reference:
                result = "PASS" if metric.check(b_num, r_num) else "FAIL"
        elif metric.check is not None and isinstance(b, str):
            result = "FAIL"
        rows.append(
            f"| {metric.label} | {cell(b, metric.unit)} | {cell(r, metric.unit)} "
            f"| {ratio} | {metric.target} | {result} |"
        )
    return "\n".join(rows)


def errors_section(results: dict[str, Measurements]) -> str:
    lines = []
    for server, measurements in results.items():
        for key, value in measurements.items():
            if isinstance(value, str):
                lines.append(f"- {server} / {key}: {value}")
    return "\n".join(lines)


@dataclass
class Row:
    """One line of a benchmark that measures beakerd alone (bench/scale_*.py)."""

    metric: str
    value: str
    target: str
    result: str


def write_rows(results: Path, header: str, rows: list[Row]) -> int:
    """Print and save `header` and the rows' table; exit status 1 if a row failed its target."""
    table = ["| metric | value | target | result |", "|---|---:|---|---|"]
    table += [f"| {r.metric} | {r.value} | {r.target} | {r.result} |" for r in rows]
    text = header + "\n".join(table) + "\n"
    print(text)
    results.write_text(text)
    return 0 if all(r.result in ("PASS", "-") for r in rows) else 1
