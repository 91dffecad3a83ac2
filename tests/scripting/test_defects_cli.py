"""`loopline report defects` and `loopline export defects` on constructed inspections.

Line A (A-WASH1), 2026-01-05: early shift lot L-00101: 4 units, 2 rejected (burr 0.9 +
scratch 0.6; burr 0.8); late shift lot L-00102: 2 units, 1 rejected (residue 0.7).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from core.store.db import Store
from core.vision import Defect, Inspection, write_inspections


def t(h: int, m: int = 0) -> datetime:
    return datetime(2026, 1, 5, h, m, tzinfo=UTC)


@pytest.fixture
def inspected(store: Store) -> Store:
    def unit(ts: datetime, n: int, lot: str, shift: str, *defects: tuple[str, float]
             ) -> Inspection:
        return Inspection(ts, "A-WASH1", "A-WASH1.vision", f"U{n}", not defects,
                          tuple(Defect(c, p) for c, p in defects), f"img/{n}.png",
                          line_id="A", order_id="PO-0001", lot_id=lot, shift_id=shift)
    with store.begin() as conn:
        write_inspections(conn, [
            unit(t(7), 1, "L-00101", "early", ("burr", 0.9), ("scratch", 0.6)),
            unit(t(7, 1), 2, "L-00101", "early"),
            unit(t(7, 2), 3, "L-00101", "early", ("burr", 0.8)),
            unit(t(7, 3), 4, "L-00101", "early"),
            unit(t(15), 5, "L-00102", "late", ("residue", 0.7)),
            unit(t(15, 1), 6, "L-00102", "late")])
    return store


def _json(cli, *args: str) -> dict:
    rc, out, err = cli("report", "defects", *args, "--json")
    assert rc == 0, err
    return json.loads(out)


def test_report_defects_by_class_lot_shift_line(inspected, cli, tmp_path: Path) -> None:
    rows = _json(cli)["rows"]  # by class by default: a Pareto
    assert [(r["group"], r["defects"]) for r in rows] == [("burr", 2), ("residue", 1),
                                                          ("scratch", 1)]
    assert rows[0]["share"] == pytest.approx(0.5) and rows[-1]["cumulative_share"] == \
        pytest.approx(1.0)
    lots = {r["group"]: r for r in _json(cli, "--by", "lot")["rows"]}
    assert (lots["L-00101"]["inspected"], lots["L-00101"]["rejected"],
            lots["L-00101"]["defects"], lots["L-00101"]["top_class"]) == (4, 2, 3, "burr")
    assert lots["L-00102"]["reject_rate"] == pytest.approx(0.5)
    shift = _json(cli, "--by", "shift", "--since", "2026-01-05T14:00", "--until",
                  "2026-01-05T22:00")["rows"]
    assert [(r["group"], r["inspected"], r["rejected"]) for r in shift] == [("late", 2, 1)]
    line = _json(cli, "--by", "line")["rows"]
    assert [(r["group"], r["inspected"], r["rejected"]) for r in line] == [("A", 6, 3)]
    svg = tmp_path / "pareto.svg"
    rc, out, err = cli("report", "defects", "--plot", str(svg))
    assert rc == 0 and "burr" in out and "50.0" in out and svg.read_text().startswith("<svg")
    rc, _, err = cli("report", "defects", "--by", "equipment")
    assert rc == 1 and "use one of class, line, lot, shift" in err and "Traceback" not in err
    rc, _, err = cli("report", "oee", "--by", "class")
    assert rc == 1 and "use one of plant, line" in err
    rc, out, _ = cli("report", "defects", "--since", "2027-01-01")
    assert rc == 0 and "no inspections" in out


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_defects(inspected, cli, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"defects.{fmt}"
    rc, text, err = cli("export", "defects", "--format", fmt, "--out", str(out),
                        "--since", "2026-01-05T06:00", "--until", "2026-01-05T14:00")
    assert rc == 0, err
    assert "wrote 5 rows of defects" in text  # 4 early units, one with two defects
    df = pl.read_csv(out) if fmt == "csv" else pl.read_parquet(out)
    assert df["unit_id"].to_list() == ["U1", "U1", "U2", "U3", "U4"]
    assert df["defect_class"].to_list()[:2] == ["burr", "scratch"]
    assert set(df["lot_id"]) == {"L-00101"} and df["image_ref"][0] == "img/1.png"
