"""The ingest benchmark is discovered and reports its raw baseline (shape only, no timing)."""

from __future__ import annotations

import json

import pytest

from bench.__main__ import available
from bench.__main__ import main as bench_main


def test_ingest_benchmark_reports_beside_raw(capsys: pytest.CaptureFixture[str]) -> None:
    assert available()["ingest_store"] == "bench.bench_ingest_store"
    assert bench_main(["ingest_store", "--tags", "60", "--seconds", "3", "--reps", "2",
                       "--batch", "50", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["rows"] == 180 and len(r["raw"]["all_s"]) == 2
    assert r["loopline"]["dropped"] == 0 and r["loopline"]["balanced"]
    assert r["ratio_to_raw"] > 0 and r["loopline"]["context_changes"] >= 3
