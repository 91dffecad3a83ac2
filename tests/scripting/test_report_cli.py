"""`loopline report` numbers against hand-computed values on constructed intervals.

A-LATHE1 (ideal 40 s) and A-MILL1 (ideal 45 s) on line A, 2026-01-05 (shifts: early
06-14, late 14-22 UTC):

A-LATHE1  running 06-08 | down_unplanned spindle_fault 08-09 | running 09-11 |
          down_planned 11-12 | down_unplanned tool_break 12:00-12:30 | running 12:30-open
A-MILL1   running 06-10 | down_unplanned spindle_fault 10-11 | idle 11-14 |
          down_unplanned jam 14-15 | running 15-16
counts    A-LATHE1 07:00 400 good 20 scrap (PO-0001, P-SH20); 13:00 30/0 (PO-0002, P-SH25)
          A-MILL1 08:00 200/50 (lot L-00101, P-SH20); 15:00 95/5 (lot L-00101)
operations on A-LATHE1: PO-0001 06-10, PO-0002 from 10 (still running)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert

from core.production import PRODUCTION_COUNT, ensure_schema
from core.store.models import EquipmentStateInterval, Operation


def t(h: int, m: int = 0) -> datetime:
    return datetime(2026, 1, 5, h, m, tzinfo=UTC)


H = 3600.0
DAY = ("--since", "2026-01-05T06:00:00Z", "--until", "2026-01-05T14:00:00Z")


@pytest.fixture
def plant(store):
    rows = [("A-LATHE1", "running", "", t(6), t(8)),
            ("A-LATHE1", "down_unplanned", "spindle_fault", t(8), t(9)),
            ("A-LATHE1", "running", "", t(9), t(11)),
            ("A-LATHE1", "down_planned", "pm", t(11), t(12)),
            ("A-LATHE1", "down_unplanned", "tool_break", t(12), t(12, 30)),
            ("A-LATHE1", "running", "", t(12, 30), None),
            ("A-MILL1", "running", "", t(6), t(10)),
            ("A-MILL1", "down_unplanned", "spindle_fault", t(10), t(11)),
            ("A-MILL1", "idle", "", t(11), t(14)),
            ("A-MILL1", "down_unplanned", "jam", t(14), t(15)),
            ("A-MILL1", "running", "", t(15), t(16))]
    with store.session() as s:
        for eq, state, reason, a, b in rows:
            s.add(EquipmentStateInterval(equipment_id=eq, state=state, reason_code=reason,
                                         start=a, end=b))
        for op_id, a, b in (("PO-0001-10", t(6), t(10)), ("PO-0002-10", t(10), None)):
            op = s.get(Operation, op_id)
            op.equipment_id, op.actual_start, op.actual_end = "A-LATHE1", a, b
            s.add(op)
        s.commit()
    ensure_schema(store)
    with store.begin() as c:
        for eq, ts, good, scrap, order, lot in (
                ("A-LATHE1", t(7), 400, 20, "PO-0001", None),
                ("A-LATHE1", t(13), 30, 0, "PO-0002", None),
                ("A-MILL1", t(8), 200, 50, None, "L-00101"),
                ("A-MILL1", t(15), 95, 5, None, "L-00101")):
            c.execute(insert(PRODUCTION_COUNT).values(equipment_id=eq, line_id="A", ts=ts,
                                                      good=good, scrap=scrap, order_id=order,
                                                      lot_id=lot))
    return store


def _report(cli, *args: str) -> dict:
    rc, out, err = cli("report", *args, "--json")
    assert rc == 0, err
    return json.loads(out)


def _by_group(doc: dict) -> dict[str, dict]:
    return {r["group"]: r for r in doc["rows"]}


def test_oee_by_line_and_equipment(plant, cli):
    doc = _report(cli, "oee", "--by", "line", *DAY)
    a = _by_group(doc)["A"]
    # A-MILL1's idle 11-14 had nothing scheduled: not planned busy time (ISO 22400)
    assert a["run_s"] == 9.5 * H and a["planned_busy_s"] == 12 * H
    assert a["ideal_s"] == 40 * 450 + 45 * 250 and (a["good"], a["scrap"]) == (630, 70)
    assert a["availability"] == pytest.approx(9.5 / 12)
    assert a["performance"] == pytest.approx(29250 / (9.5 * H))
    assert a["quality"] == pytest.approx(0.9)
    assert a["oee"] == pytest.approx(29250 / (12 * H) * 0.9)
    eq = _by_group(_report(cli, "oee", "--by", "equipment", *DAY))
    lathe = eq["A-LATHE1"]
    assert lathe["availability"] == pytest.approx(5.5 / 7)
    assert lathe["performance"] == pytest.approx(18000 / (5.5 * H))
    assert lathe["oee"] == pytest.approx(18000 / (7 * H) * 430 / 450)
    assert eq["B-DRY1"]["oee"] is None  # no data: no basis, not 0
    plant_row = _by_group(_report(cli, "oee", "--by", "plant", *DAY))["plant"]
    assert plant_row["oee"] == pytest.approx(a["oee"])


def test_downtime_pareto_and_shift_split(plant, cli):
    rows = _report(cli, "downtime", "--by", "plant", *DAY)["rows"]
    assert [(r["reason"], r["hours"], r["stops"]) for r in rows] == [
        ("spindle_fault", 2.0, 2), ("tool_break", 0.5, 1)]
    assert [r["share"] for r in rows] == pytest.approx([0.8, 0.2])
    assert [r["cumulative_share"] for r in rows] == pytest.approx([0.8, 1.0])
    # 06-16 by shift: the open running interval and jam fall in the late shift
    doc = _report(cli, "downtime", "--by", "shift", "--since", "2026-01-05T06:00",
                  "--until", "2026-01-05T16:00")
    assert [(r["group"], r["reason"], r["hours"]) for r in doc["rows"]] == [
        ("early", "spindle_fault", 2.0), ("early", "tool_break", 0.5), ("late", "jam", 1.0)]
    oee = _by_group(_report(cli, "oee", "--by", "shift", "--since", "2026-01-05T06:00",
                            "--until", "2026-01-05T16:00"))
    assert (oee["early"]["run_s"], oee["early"]["planned_busy_s"]) == (9.5 * H, 12 * H)
    assert (oee["late"]["run_s"], oee["late"]["planned_busy_s"]) == (3 * H, 4 * H)
    # with the other loss states counted, the idle and planned hours show up
    rows = _report(cli, "downtime", "--by", "plant", "--states",
                   "down_unplanned,idle,down_planned", *DAY)["rows"]
    assert [(r["reason"], r["hours"]) for r in rows] == [
        ("(idle)", 3.0), ("spindle_fault", 2.0), ("pm", 1.0), ("tool_break", 0.5)]


def test_scrap_and_product_attribution(plant, cli):
    scrap = _by_group(_report(cli, "scrap", "--by", "shift", "--since", "2026-01-05",
                              "--until", "2026-01-06"))
    assert (scrap["early"]["good"], scrap["early"]["scrap"]) == (630, 70)
    assert scrap["early"]["scrap_rate"] == pytest.approx(0.1)
    assert scrap["late"]["scrap_rate"] == pytest.approx(0.05)
    prod = _by_group(_report(cli, "scrap", "--by", "product", *DAY))
    assert (prod["P-SH20"]["good"], prod["P-SH20"]["scrap"]) == (600, 70)
    assert prod["P-SH25"]["scrap_rate"] == 0.0
    oee = _by_group(_report(cli, "oee", "--by", "product", *DAY))
    assert (oee["P-SH20"]["run_s"], oee["P-SH20"]["planned_busy_s"]) == (3 * H, 4 * H)
    assert (oee["P-SH25"]["run_s"], oee["P-SH25"]["planned_busy_s"]) == (2.5 * H, 3 * H)
    assert (oee["(none)"]["run_s"], oee["(none)"]["planned_busy_s"]) == (4 * H, 5 * H)
    assert oee["P-SH20"]["quality"] == pytest.approx(600 / 670)
    down = _report(cli, "downtime", "--by", "product", *DAY)["rows"]
    assert [(r["group"], r["reason"], r["hours"]) for r in down] == [
        ("(none)", "spindle_fault", 1.0), ("P-SH20", "spindle_fault", 1.0),
        ("P-SH25", "tool_break", 0.5)]


def test_tables_plot_and_bad_input(plant, cli, tmp_path: Path):
    svg = tmp_path / "charts" / "pareto.svg"
    rc, out, err = cli("report", "downtime", "--by", "plant", *DAY, "--plot", str(svg))
    assert rc == 0, err
    assert "spindle_fault" in out and "80.0" in out
    text = svg.read_text()
    assert text.startswith("<svg") and "spindle_fault" in text and "cum. 80 %" in text
    rc, out, err = cli("report", "oee", *DAY)
    assert rc == 0 and "OEE by line" in out
    rc, _, err = cli("report", "oee", "--since", "yesterday")
    assert rc == 1 and "--since 'yesterday' is not an ISO-8601 time" in err
    assert "Traceback" not in err
    rc, _, err = cli("report", "oee", "--since", "2026-01-06", "--until", "2026-01-05")
    assert rc == 1 and "must be after" in err
    rc, _, err = cli("report", "scrap", "--plot", str(tmp_path / "x.png"))
    assert rc == 1 and ".svg" in err
    rc, _, err = cli("report", "downtime", "--states", "broken")
    assert rc == 1 and "unknown state" in err


def test_downtime_accounts_for_the_availability_oee_loses(plant, cli):
    """report downtime counts by default what report oee's availability loses (planned busy
    time that was not run time: starved and blocked included), and says what it left out."""
    oee = _by_group(_report(cli, "oee", "--by", "plant", *DAY))["plant"]
    down = _report(cli, "downtime", "--by", "plant", *DAY)
    lost_h = (oee["planned_busy_s"] - oee["run_s"]) / H
    assert sum(r["hours"] for r in down["rows"]) == pytest.approx(lost_h)
    assert set(down["states"]) == {"down_unplanned", "setup", "starved", "blocked"}
    rc, out, _ = cli("report", "downtime", "--by", "plant", *DAY)
    assert rc == 0 and "not counted: idle, down_planned" in out and "machine-hours" in out
