"""The S3 benchmark's table: medians per side, and each beakerd side's ratio to the reference."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.report import cell

# Per side: metric key → the value of every run, or the error that stopped it.
Runs = dict[str, list[float] | str]
REFERENCE = "reference"


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    # beakerd / reference must reach this (higher_is_better) or stay under it; None: no target.
    factor: float | None
    target: str
    higher_is_better: bool = True

    def passes(self, ratio: float) -> bool:
        assert self.factor is not None
        return ratio >= self.factor if self.higher_is_better else ratio < self.factor


def _cpu_metrics(kind: str, label: str) -> list[Metric]:
    return [
        Metric(f"push_{kind}_server_cpu", f"server CPU per GiB pushed, {label}", "s", None,
               "info", higher_is_better=False),
        Metric(f"push_{kind}_store_cpu", f"SeaweedFS CPU per GiB pushed, {label}", "s", None,
               "info", higher_is_better=False),
        Metric(f"push_{kind}_total_cpu", f"server + SeaweedFS CPU per GiB pushed, {label}", "s",
               1.0, "< ref", higher_is_better=False),
    ]  # fmt: skip


METRICS: list[Metric] = [
    Metric("push_monolithic", "blob push, monolithic (POST + PUT)", "MB/s", 1.5, ">= 1.5x ref"),
    Metric("push_chunked", "blob push, chunked (16 MiB PATCH)", "MB/s", 1.5, ">= 1.5x ref"),
    Metric("pull_redirect", "blob pull, 307 to SeaweedFS (followed)", "MB/s", 1.0, ">= 1x ref"),
    Metric("pull_stream", "blob pull, streamed by the registry", "MB/s", 1.5, ">= 1.5x ref"),
    Metric("manifest_get", "manifest GET, wrk -t2 -c32", "req/s", 4.0, ">= 4x ref"),
    *_cpu_metrics("monolithic", "monolithic"),
    *_cpu_metrics("chunked", "chunked"),
]


def median(runs: list[float] | str | None) -> float | str | None:
    if isinstance(runs, list):
        return statistics.median(runs) if runs else None
    return runs


def markdown_table(results: dict[str, Runs]) -> str:
    """One column per side (the reference last), then, for each beakerd side, its ratio to the
    reference and whether the target is met."""
    sides = [name for name in results if name != REFERENCE] + [REFERENCE]
    challengers = sides[:-1]
    ratio_names = ["ratio"] if len(challengers) == 1 else [f"{n} / ref" for n in challengers]
    head = ["metric", *sides, *ratio_names, "target", "result"]
    rows = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(sides) + len(ratio_names))
            + "---|---|"]  # fmt: skip
    for metric in METRICS:
        values = {name: median(results.get(name, {}).get(metric.key)) for name in sides}
        reference = values[REFERENCE]
        ratios, verdicts = [], []
        for name in challengers:
            value = values[name]
            if isinstance(value, float) and isinstance(reference, float) and reference:
                ratio = value / reference
                ratios.append(f"{ratio:.2f}x")
                if metric.factor is not None:
                    verdicts.append("PASS" if metric.passes(ratio) else "FAIL")
            else:
                ratios.append("-")
                if metric.factor is not None:
                    verdicts.append("FAIL" if isinstance(value, str) else "-")
        cells = [cell(values[name], metric.unit) for name in sides]
        result = " / ".join(verdicts) if verdicts else "-"
        rows.append(f"| {metric.label} | " + " | ".join([*cells, *ratios, metric.target, result])
                    + " |")  # fmt: skip
    return "\n".join(rows)


def runs_section(results: dict[str, Runs]) -> str:
    """Every run's value, so that the spread behind each median can be seen."""
    lines = []
    for metric in METRICS:
        parts = []
        for name, runs in results.items():
            values = runs.get(metric.key)
            if isinstance(values, list) and values:
                parts.append(f"{name} " + ", ".join(f"{v:,.1f}" for v in values))
        if parts:
            lines.append(f"- {metric.label} ({metric.unit}): " + "; ".join(parts))
    return "\n".join(lines)


def errors_section(results: dict[str, Runs]) -> str:
    return "\n".join(
        f"- {name} / {key}: {value}"
        for name, runs in results.items()
        for key, value in runs.items()
        if isinstance(value, str)
    )
