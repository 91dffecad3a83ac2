"""The twin's vision stations: defects follow the injected causes, false rejects stay rare."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from core.config import LoadedConfig
from sim.master import Master
from sim.plant import Plant
from sim.truth import TruthLog
from sim.vision import as_json, as_registers

START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)



def _run(cfg: LoadedConfig, master: Master, *inject: tuple[str, str, int, float],
         hours: float = 12) -> Plant:
    p = Plant(cfg, master, seed=3, start=START, truth=TruthLog(None), lines=["A", "C"])
    for kind, eq, at, done in inject:
        p.inject(kind, eq, at, done)
    p.run(int(hours * 3600))
    return p


def _units(p: Plant, station: str) -> list[dict]:
    return [e for e in p.truth.events if e["event"] == "vision_unit" and e["station"] == station]


def test_tool_wear_makes_burrs_the_station_catches(cfg: LoadedConfig, master: Master) -> None:
    clean = _run(cfg, master)
    worn = _run(cfg, master, ("tool", "A-LATHE1", 60, 0.5))
    assert not [e for e in _units(clean, "A-WASH1") if e["true"]]  # no cause, no defect
    units = _units(worn, "A-WASH1")
    true_burrs = [e for e in units if "burr" in e["true"]]
    assert len(true_burrs) > 50
    caught = [e for e in true_burrs if "burr" in e["flagged"] and not e["passed"]]
    assert 0.85 < len(caught) / len(true_burrs) <= 1.0  # recall 0.95
    lots = [e for e in worn.truth.events if e["event"] == "vision_lot"]
    assert sum(e["defective"] for e in lots) <= len(true_burrs)
    assert sum(e["caught"] for e in lots) + sum(e["escaped"] for e in lots) \
        == sum(e["defective"] for e in lots)
    # the other line did not notice: its stream of draws is its own
    assert _units(worn, "C-PACK1") == _units(clean, "C-PACK1")


def test_false_reject_rate_and_what_is_published(cfg: LoadedConfig, master: Master) -> None:
    p = _run(cfg, master)
    for st in p.vision.stations.values():
        assert st.clean > 300
        assert 0.005 < st.false_rejects / st.clean < 0.04, st
    fr = [e for e in _units(p, "C-PACK1") if e["false_reject"]]
    assert fr and all(not e["true"] and e["flagged"] for e in fr)
    classes = cfg.tags_for("C-PACK1")[-1].spec.vision.classes  # type: ignore[union-attr]
    assert Counter(c for e in fr for c in e["flagged"]).keys() <= set(classes)
    rec = p.machines["C-PACK1"].snapshot()["vision"]
    assert rec["n"] == p.vision.stations["C-PACK1"].inspected
    regs = as_registers(rec, classes)
    assert regs[0] == rec["n"] and len(regs) == 3 + len(classes)
    assert as_json(None) == "{}" and '"result"' in as_json(rec)


def test_heater_drift_and_clog_on_the_extruder(cfg: LoadedConfig, master: Master) -> None:
    p = _run(cfg, master, ("heater", "C-EXTR1", 60, 0.6), ("clog", "C-EXTR1", 60, 0.6))
    seen = Counter(c for e in _units(p, "C-PACK1") for c in e["true"])
    assert seen["incomplete_fill"] > 10
    assert seen["sink_mark"] + seen["short_shot"] > 10
