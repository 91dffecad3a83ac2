"""OEE (ISO 22400) on constructed intervals and counts with known results."""

from __future__ import annotations

from datetime import timedelta

import pytest
from ingest_helpers import T0, at, sample

from core.config import LoadedConfig
from core.ingest.contextualizer import Contextualizer
from core.oee import CountRow, StateSpan, by_equipment, by_line, by_shift, compute
from core.production import ProductionTracker
from core.store.db import Store

H = 3600.0


def test_compute_known_figures() -> None:
    # 8 h: 1 h planned down (not in PBT), 0.5 h setup, 0.5 h unplanned down, 6 h running
    spans = [StateSpan("M", "running", at(0), at(3 * H)),
             StateSpan("M", "setup", at(3 * H), at(3.5 * H)),
             StateSpan("M", "down_planned", at(3.5 * H), at(4.5 * H)),
             StateSpan("M", "down_unplanned", at(4.5 * H), at(5 * H)),
             StateSpan("M", "running", at(5 * H), None)]  # open: runs to `now`
    # 480 pieces at 40 s ideal = 19200 s = 5.333 h of ideal time; 24 scrap
    counts = [CountRow("M", at(60 * k), 19, 1) for k in range(24)]
    counts.append(CountRow("M", at(9 * H), 100, 0))  # outside the range: ignored
    r = compute("equipment", "M", spans, counts, {"M": 40.0}, at(0), at(8 * H), now=at(9 * H))
    assert r.planned_busy_s == 7 * H and r.run_s == 6 * H
    assert r.availability == pytest.approx(6 / 7)
    assert r.performance == pytest.approx(19200 / (6 * H))
    assert r.quality == pytest.approx(456 / 480)
    assert r.oee == pytest.approx(6 / 7 * 19200 / (6 * H) * 456 / 480)
    # clipping: the first 2 h only; open interval cut at `now`
    r2 = compute("equipment", "M", spans, [], {"M": 40.0}, at(0), at(2 * H))
    assert (r2.run_s, r2.planned_busy_s, r2.performance, r2.quality) == (2 * H, 2 * H, 0.0, None)
    r3 = compute("equipment", "M", spans, [], {}, at(5 * H), at(8 * H), now=at(6 * H))
    assert r3.run_s == 1 * H
    # no data and planned downtime alone: no basis for availability, not 0
    r4 = compute("equipment", "M", [StateSpan("M", "unknown", at(0), at(H))], [], {}, at(0),
                 at(H))
    assert r4.availability is None and r4.oee is None


def test_oee_from_store_per_equipment_line_shift(store: Store,
                                                 loaded_config: LoadedConfig) -> None:
    cz = Contextualizer(loaded_config.tags)
    cz.refresh(store, now=T0)
    tr = ProductionTracker(loaded_config.tags)
    tr.load(store)
    # A-LATHE1 (ideal 40 s): runs 06:00-12:00, down 12:00-13:00, runs 13:00-16:00
    # A-MILL1 (ideal 45 s): runs 06:00-16:00 without a stop
    samples = [sample("A-LATHE1.state", 0, 1), sample("A-MILL1.state", 0, 1),
               sample("A-LATHE1.state", 6 * H, 4), sample("A-LATHE1.state", 7 * H, 1),
               sample("A-LATHE1.good_count", 0, 0), sample("A-LATHE1.scrap_count", 0, 0),
               sample("A-MILL1.good_count", 0, 0)]
    # lathe: 300 good + 20 scrap in the early shift, 100 good in the late shift
    samples += [sample("A-LATHE1.good_count", 7 * H + 60, 300),
                sample("A-LATHE1.scrap_count", 7 * H + 60, 20),
                sample("A-LATHE1.good_count", 9 * H, 400),
                sample("A-MILL1.good_count", 9 * H, 500),
                sample("A-LATHE1.state", 10 * H, 0), sample("A-MILL1.state", 10 * H, 0)]
    tr.process(cz.stamp(sorted(samples, key=lambda s: s.source_ts)))
    tr.flush(store)
    start, end = T0, T0 + timedelta(hours=10)
    eq = by_equipment(store, start, end)
    lathe = eq["A-LATHE1"]
    assert (lathe.run_s, lathe.planned_busy_s, lathe.good, lathe.scrap) == (9 * H, 10 * H,
                                                                           400, 20)
    assert lathe.availability == pytest.approx(0.9)
    assert lathe.performance == pytest.approx(420 * 40 / (9 * H))
    assert lathe.quality == pytest.approx(400 / 420)
    mill = eq["A-MILL1"]
    assert mill.availability == pytest.approx(1.0)
    assert mill.performance == pytest.approx(500 * 45 / (10 * H))
    assert eq["C-PACK1"].oee is None  # no data at all: no basis
    line_a = by_line(store, start, end)["A"]
    assert line_a.run_s == 19 * H and line_a.planned_busy_s == 20 * H
    assert line_a.performance == pytest.approx((420 * 40 + 500 * 45) / (19 * H))
    shifts = by_shift(store, start, end, equipment_ids=["A-LATHE1"])
    assert [s.key.split()[0] for s in shifts] == ["early", "late"]
    early, late = shifts
    assert (early.run_s, early.planned_busy_s, early.good, early.scrap) == (7 * H, 8 * H, 300, 20)
    assert (late.run_s, late.planned_busy_s, late.good, late.scrap) == (2 * H, 2 * H, 100, 0)


def test_by_shift_from_hourly_sums_equals_the_minute_rows(store) -> None:  # type: ignore[no-untyped-def]
    """A month's OEE by shift reads counts summed per hour; the figures are the minute rows'."""
    import random
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from core import oee
    from core.production import PRODUCTION_COUNT, ensure_schema
    from core.store.models import EquipmentStateInterval

    t0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    rng = random.Random(4)
    ensure_schema(store)
    with store.begin() as c:
        t = t0
        while t < t0 + timedelta(days=2):
            nxt = t + timedelta(minutes=rng.randint(5, 90))
            c.execute(insert(EquipmentStateInterval.__table__).values(
                equipment_id="A-LATHE1", state=rng.choice(["running", "idle", "running"]),
                reason_code="", start=t, end=nxt))
            t = nxt
        c.execute(insert(PRODUCTION_COUNT), [
            {"equipment_id": "A-LATHE1", "line_id": "A", "ts": t0 + timedelta(minutes=k),
             "good": rng.randint(0, 3), "scrap": rng.randint(0, 1)} for k in range(2 * 1440)])
    start, end = t0, t0 + timedelta(days=2)
    assert oee.load_counts_hourly(store, start, end) is not None
    got = oee.by_shift(store, start, end, end)
    eqs = oee._equipment(store)
    ideal = {k: v[1] for k, v in eqs.items()}
    spans, counts = oee.load_spans(store, start, end), oee.load_counts(store, start, end)
    want = [oee.compute("shift", f"{w.shift_id} {w.start.isoformat()}", spans, counts, ideal,
                        w.start, w.end, end)
            for w in oee.calendar_from_store(store).windows(start, end)]
    assert got == want and sum(o.good for o in got) > 0
