"""The evaluation's defect KPIs: caught (station rejects, held lots) and escaped (shipped)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.config import LoadedConfig, load_config
from runtime.evaluation import defects_of
from sim.master import load_master
from sim.plant import Plant
from sim.truth import TruthLog

REPO = Path(__file__).resolve().parents[2]


def _u(lot: str, true: list[str], passed: bool, fr: bool = False) -> dict:
    return {"event": "vision_unit", "lot": lot, "true": true, "passed": passed,
            "flagged": [] if passed else (true or ["scratch"]), "false_reject": fr}


def test_hand_made_truth() -> None:
    truth = [_u("L1", ["burr"], False), _u("L1", ["burr"], True), _u("L2", ["burr"], True),
             _u("L3", ["burr"], True), _u("L1", [], False, fr=True),
             {"event": "lot_held", "lot": "L2"},
             {"event": "lot_held", "lot": "L3"}, {"event": "lot_released", "lot": "L3"},
             {"event": "lot_completed", "lot": "L1"},
             {"event": "vision_lot", "lot": "L1", "inspected": 52, "defective": 2,
              "false_rejects": 1}]
    k = defects_of(truth)
    # L1: one rejected (caught), one passed and shipped (escaped); L2 held: caught by the
    # hold; L3 released and still in WIP: neither yet
    assert (k["defects_true"], k["defects_caught"], k["defects_caught_by_hold"],
            k["defects_escaped"]) == (4, 2, 1, 1)
    assert k["false_rejects"] == 1 and k["false_reject_rate"] == pytest.approx(1 / 50)
    assert defects_of([])["false_reject_rate"] is None


def test_twin_tool_wear_defects_are_mostly_caught() -> None:
    cfg: LoadedConfig = load_config(REPO / "config.toml")
    p = Plant(cfg, load_master(cfg.master_data_path), seed=5,
              start=datetime(2026, 1, 5, 6, tzinfo=UTC), truth=TruthLog(None), lines=["A"])
    p.inject("tool", "A-LATHE1", 60, 0.5)
    p.run(16 * 3600)
    k = defects_of(p.truth.events)
    assert k["defects_true"] > 50
    assert k["defects_caught"] + k["defects_escaped"] <= k["defects_true"]
    assert k["defects_escaped"] < 0.12 * k["defects_true"]  # the station's recall is 0.95
    assert 0.0 < k["false_reject_rate"] < 0.05
