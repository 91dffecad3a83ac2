"""The history benchmark runs small and reports every figure beside its baseline.

Only the shape is checked; the figures come from `python -m bench history`.
"""

from __future__ import annotations

import json

import pytest

from bench.__main__ import available
from bench.__main__ import main as bench_main


def test_history_benchmark_reports_reads_beside_raw_scans(
        capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert available()["history"] == "bench.bench_history"
    assert bench_main(["history", "--days", "1", "--tags", "36", "--hot-hours", "18",
                       "--reps", "2", "--dir", str(tmp_path / "h"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["archived"] == 36 * 86_400 and r["hot"] == 36 * 18 * 3600
    assert r["tag_8h"]["hot_p95_s"] > 0 and r["tag_8h"]["raw_scan_p95_s"] > 0
    assert r["tag_span_1m"]["minutes"] >= r["tag_span_1m"]["raw_minutes"] > 0
    assert r["oee_by_shift"]["rows"] > 0 and r["ml_window"]["tags"] == 36
    assert r["ml_window"]["rows"] == 36 * (18 * 3600 - 1)  # (start, end]: the ML contract
    d = r["disk"]
    assert 0 < d["archive_bytes_per_sample"] < 4 and d["noisy_1hz"]["parquet"] > 4
    assert not (tmp_path / "h").exists()  # generated files removed without --keep
