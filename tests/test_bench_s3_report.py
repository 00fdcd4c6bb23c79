"""The S3 benchmark's table: medians, ratios to the reference, and which way each target points."""

from __future__ import annotations

from bench.s3_report import Runs, markdown_table, runs_section


def _row(table: str, label: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_throughput_ratio_is_of_medians_and_passes_at_its_factor() -> None:
    results: dict[str, Runs] = {
        "beakerd": {"push_monolithic": [90.0, 300.0, 150.0]},
        "reference": {"push_monolithic": [100.0, 10.0, 1000.0]},
    }
    row = _row(markdown_table(results), "blob push, monolithic (POST + PUT)")
    assert row == ["blob push, monolithic (POST + PUT)", "150 MB/s", "100 MB/s", "1.50x",
                   ">= 1.5x ref", "PASS"]  # fmt: skip


def test_cpu_target_passes_only_below_the_reference() -> None:
    results: dict[str, Runs] = {
        "beakerd": {"push_chunked_total_cpu": [20.0]},
        "beakerd x3": {"push_chunked_total_cpu": [30.0]},
        "reference": {"push_chunked_total_cpu": [25.0]},
    }
    table = markdown_table(results)
    assert table.splitlines()[0] == (
        "| metric | beakerd | beakerd x3 | reference | beakerd / ref | beakerd x3 / ref"
        " | target | result |"
    )
    row = _row(table, "server + SeaweedFS CPU per GiB pushed, chunked")
    assert row[-1] == "PASS / FAIL"


def test_a_failed_side_fails_its_targets_and_a_missing_one_is_left_blank() -> None:
    results: dict[str, Runs] = {
        "beakerd": {"pull_stream": "could not start: no bucket"},
        "reference": {"pull_stream": [500.0], "manifest_get": [400.0]},
    }
    table = markdown_table(results)
    assert _row(table, "blob pull, streamed by the registry")[1:] == [
        "error", "500 MB/s", "-", ">= 1.5x ref", "FAIL",
    ]  # fmt: skip
    assert _row(table, "manifest GET, wrk -t2 -c32")[-2:] == [">= 4x ref", "-"]


def test_every_run_is_listed_beside_the_medians() -> None:
    results: dict[str, Runs] = {"reference": {"manifest_get": [476.0, 480.5]}}
    assert runs_section(results) == "- manifest GET, wrk -t2 -c32 (req/s): reference 476.0, 480.5"
