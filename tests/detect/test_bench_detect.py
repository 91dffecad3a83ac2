"""The detection benchmark runs from `python -m bench detect` and reports its figures."""

from __future__ import annotations

import json

from bench.__main__ import available, load


def test_detect_benchmark_is_registered_and_reports_both_parts(capsys) -> None:  # type: ignore[no-untyped-def]
    assert "detect" in available()
    rc = load("detect")(["--samples", "3000", "--reps", "1", "--shift-h", "0.5", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    tp = report["throughput"]
    assert tp["samples"] == 3000 and tp["tags"] > 200
    assert tp["detect_samples_per_s"] > 0 and tp["raw_lookup_samples_per_s"] > 0
    shift = report["shift"]
    assert set(shift["positions"]) == {"A", "B", "C"}
    assert all({"per_hour", "flood_pct", "alarms"} <= set(v) for v in shift["positions"].values())
