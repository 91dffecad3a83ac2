"""The bench entry point finds benchmarks by name; the store benchmark reports its baseline.

Only the shape of the report is checked: speed is measured by `python -m bench store`,
never asserted in tests.
"""

from __future__ import annotations

import json

import pytest

from bench.__main__ import available
from bench.__main__ import main as bench_main


def test_store_benchmark_is_discovered() -> None:
    assert available()["store"] == "bench.bench_store"


def test_store_benchmark_reports_writer_beside_raw_baseline(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["store", "--rows", "600", "--batch", "250", "--reps", "2",
                       "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in report["results"]]
    assert names[0] == "raw sqlite3 executemany"
    assert any(n.startswith("write_samples") for n in names)
    for r in report["results"]:
        assert len(r["all_s"]) == 2 and r["rows_per_s"] > 0 and r["ratio_to_raw"] > 0
    assert report["results"][0]["ratio_to_raw"] == 1.0


def test_unknown_benchmark_is_a_message() -> None:
    with pytest.raises(SystemExit, match="no benchmark 'nope'"):
        bench_main(["nope"])
