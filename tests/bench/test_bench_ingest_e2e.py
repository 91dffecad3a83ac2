"""The end-to-end ingest benchmark runs on a tiny twin and its figures add up (no timing)."""

from __future__ import annotations

import json

import pytest

from bench.__main__ import available
from bench.__main__ import main as bench_main


def test_ingest_e2e_reports_loss_and_baselines(capsys: pytest.CaptureFixture[str]) -> None:
    assert available()["ingest_e2e"] == "bench.bench_ingest_e2e"
    assert bench_main(["ingest_e2e", "--scale", "1", "--speed", "60", "--seconds", "3",
                       "--warmup", "2", "--raw-seconds", "2", "--sqlite-seconds", "2",
                       "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    lp = r["loopline"]
    assert r["tags"] == lp["tags"] > 100 and lp["modbus_tags"] > 0
    assert lp["received"] == lp["stored"] + lp["quarantined"] and lp["lost"] == 0
    assert lp["sample_rows"] == lp["stored"] > 0 and lp["dropped"] == 0 and lp["balanced"]
    assert lp["committed_per_s"] > 0 and lp["rss_peak_mb"] >= lp["rss_before_mb"] > 0
    assert r["raw_sqlite"]["rows"] == r["tags"] * 2 and r["raw_sqlite"]["rows_per_s"] > 0
    assert r["raw_modbus"]["registers_per_s"] > 0 and r["raw_modbus"]["blocks"] > 0
    assert any(o["values_per_s"] for o in r["raw_opcua"])
    assert r["offered_per_s"] >= r["modbus_offered_per_s"] > 0
    assert r["ratios"]["committed_vs_target"] == pytest.approx(lp["committed_per_s"] / 20_000)
    assert r["twin_alive_at_end"]
