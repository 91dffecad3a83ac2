"""The inspection data contract: readings → inspections in the store, readers, scrap booking."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ingest"))
from ingest_helpers import CTX, T0, at

from core.config.loader import ResolvedTag
from core.config.schema import Tag
from core.production import PRODUCTION_COUNT
from core.samples import Context, ContextSample, Quality
from core.store.db import Store, open_store
from core.vision import (
    Defect,
    Reading,
    VisionTracker,
    decode_reading,
    defect_counts,
    encode_reading,
    inspections,
)

TAG = ResolvedTag("A-WASH1.vision", "vision", "A-WASH1", "A", "opc",
                  Tag(name="vision", address="ns=2;s=A.A-WASH1.Vision", kind="vision"))


def _s(t: float, r: Reading, ctx: Context = CTX) -> ContextSample:
    return ContextSample(TAG.id, at(t), encode_reading(r), Quality.GOOD, None, ctx)


def _scrap(store: Store) -> tuple[int, int]:
    from sqlalchemy import func, select
    pc = PRODUCTION_COUNT
    with store.engine.connect() as c:
        g, s = c.execute(select(func.sum(pc.c.good), func.sum(pc.c.scrap))).one()
    return int(g or 0), int(s or 0)


def test_reading_round_trip_and_bad_text() -> None:
    r = Reading("U1", 7, False, (Defect("burr", 0.93), Defect("scratch", 0.5)), "img/1.png")
    assert decode_reading(encode_reading(r)) == r
    with pytest.raises(ValueError):
        decode_reading("{}")
    assert Reading(None, 0, True).key is None and Reading("", None, True).key is None


@pytest.fixture
def any_store(db_url: str) -> Iterator[Store]:
    """A fresh store on SQLite and on PostgreSQL: the contract's SQL is portable."""
    st = open_store(db_url)
    try:
        yield st
    finally:
        st.close()


def test_units_counted_once_with_context_and_restart(any_store: Store) -> None:
    store = any_store
    vt = VisionTracker([TAG])
    vt.load(store)
    b = Reading(None, 1, False, (Defect("burr", 0.9),), "img/1")
    vt.process([_s(0, Reading(None, 0, True)),  # nothing inspected yet
                _s(1, b), _s(1.5, b),  # polled twice: one unit
                _s(2, Reading(None, 2, True)), _s(3, Reading(None, 4, True))])  # 3 missed
    vt.process([_s(4, Reading(None, 1, False, (Defect("scratch", 0.8),
                                                Defect("burr", 0.6))))])  # station restart
    assert vt.flush(store) == 4
    assert vt.stats.missed == 1 and vt.stats.restarts == 1 and vt.stats.rejects == 2
    # loopline restarts: the last unit is known, it is not counted again
    vt2 = VisionTracker([TAG])
    vt2.load(store)
    vt2.process([_s(5, Reading(None, 1, False, (Defect("scratch", 0.8),)))])
    assert vt2.flush(store) == 0
    df = inspections(store)
    assert df.height == 5  # 4 units, the last one with two defects
    assert df["inspection_id"].n_unique() == 4
    assert df["unit_id"].to_list() == ["1", "2", "4", "1", "1"]
    first = df.row(0, named=True)
    assert first["lot_id"] == "L-00101" and first["order_id"] == "PO-0001"
    assert first["shift_id"] == "early" and first["recipe_id"] == "R-SH20"
    assert first["ts"] == at(1) and first["defect_class"] == "burr"
    assert df.filter(df["passed"])["defect_class"].null_count() == 2
    assert _scrap(store) == (-2, 2)  # two rejects moved from good to scrap
    assert inspections(store, since=at(3), until=at(10)).height == 3
    assert inspections(store, line_id="B").height == 0
    cls = defect_counts(store, "class")
    assert cls["defect_class"].to_list() == ["burr", "scratch"]
    assert cls["defects"].to_list() == [2, 1] and cls["cumulative_share"][-1] == pytest.approx(1)
    lot = defect_counts(store, "lot").row(0, named=True)
    assert (lot["lot_id"], lot["inspected"], lot["rejected"], lot["defects"],
            lot["top_class"]) == ("L-00101", 4, 2, 3, "burr")
    assert defect_counts(store, "shift", since=T0 + timedelta(hours=1)).height == 0
    with pytest.raises(ValueError):
        defect_counts(store, "colour")  # type: ignore[arg-type]
