"""`loopline eval`: both arms run on the real twin with the same seed and start, and the
result has the KPIs side by side with their difference."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_eval_prints_both_arms_and_the_difference(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "console.cli", "eval", "--days", "0.1", "--seed", "7",
           "--speed", "1800", "--workdir", str(tmp_path), "--json"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    rows = {r["kpi"]: r for r in res["rows"]}
    for kpi in ("oee", "unplanned_downtime_h", "scrap_rate", "on_time_delivery",
                "recommendations", "accepted", "work_order_false_alarms"):
        assert kpi in rows, kpi
    # the arms ran the same plant: same orders released, same truth start
    assert res["off"]["arm"] == "off" and res["on"]["arm"] == "on"
    assert res["off"]["orders_due"] == res["on"]["orders_due"]
    for arm in ("off", "on"):
        truth = (tmp_path / f"arm-{arm}" / "truth.jsonl").read_text().splitlines()
        start = json.loads(truth[0])
        assert start["epoch"] == "2026-01-05T06:00:00Z"
        ing = res[arm]["ingest"]
        assert ing["received"] == ing["stored"] + ing["quarantined"]
    # loop off approves and executes nothing; loop on decides what it recommends
    assert rows["accepted"]["off"] == 0 and rows["executed"]["off"] == 0
    assert rows["recommendations"]["off"] > 0 or rows["recommendations"]["on"] > 0
    o = rows["oee"]
    assert o["off"] is not None and o["on"] is not None
    assert abs(o["diff"] - (o["on"] - o["off"])) < 1e-12


def test_eval_refuses_bad_arguments(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for argv, words in ((["--speed", "0"], "out of range"), (["--days", "-1"], "days"),
                        (["--start", "monday"], "bad --start"),
                        (["--ml", "--models", str(tmp_path / "none")], "no model registry"),
                        (["--models", str(REPO)], "no model registry")):
        proc = subprocess.run([sys.executable, "-m", "console.cli", "eval", *argv,
                               "--workdir", str(tmp_path)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and words in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
