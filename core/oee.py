"""OEE per ISO 22400-2 from state intervals and production counts, per equipment, line, shift.

For a time range [start, end), with state intervals clipped to it (an open interval
runs to ``now``, at most ``end``):

- APT, actual production time  = time in ``running``
- PBT, planned busy time       = time in every state except ``down_planned`` and
  ``unknown`` (no data: neither counted as available nor as lost)
- availability = APT / PBT
- performance  = Σ(ideal cycle time × produced quantity) / APT, produced = good + scrap
- quality      = good / produced
- OEE          = availability × performance × quality

A line (or a shift over several machines) sums the times and quantities of its
equipment before dividing, so each figure is time- or piece-weighted. A ratio with a
zero denominator is None ("no basis"), never 0 or 1.

After a communication gap the machine's counters jump by the parts made while no state
was known (``unknown`` is neither run nor planned time), so their ideal time would
exceed the run time seen: each machine's ideal time is capped at its run time
(performance ≤ 100 %), before machines are summed.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select

from core.ingest.shifts import calendar_from_store
from core.production import PRODUCTION_COUNT, ensure_schema
from core.store.db import Store, guard
from core.store.models import Equipment, EquipmentStateInterval

# not planned busy time (ISO 22400 PBT): planned maintenance, and idle — nothing was
# scheduled to run (no order); starved and blocked stay losses of the line
NOT_PLANNED = ("down_planned", "idle", "unknown")


@dataclass(frozen=True)
class StateSpan:
    equipment_id: str
    state: str
    start: datetime
    end: datetime | None  # None: still open


@dataclass(frozen=True)
class CountRow:
    equipment_id: str
    ts: datetime
    good: int
    scrap: int
    shift_id: str | None = None
    line_id: str | None = None


@dataclass(frozen=True)
class Oee:
    scope: str  # "equipment" | "line" | "shift" | "plant"
    key: str
    start: datetime
    end: datetime
    planned_busy_s: float
    run_s: float
    ideal_s: float
    good: int
    scrap: int

    @property
    def total(self) -> int:
        return self.good + self.scrap

    @property
    def availability(self) -> float | None:
        return self.run_s / self.planned_busy_s if self.planned_busy_s > 0 else None

    @property
    def performance(self) -> float | None:
        return self.ideal_s / self.run_s if self.run_s > 0 else None

    @property
    def quality(self) -> float | None:
        return self.good / self.total if self.total > 0 else None

    @property
    def oee(self) -> float | None:
        a, p, q = self.availability, self.performance, self.quality
        return a * p * q if a is not None and p is not None and q is not None else None

    def as_dict(self) -> dict[str, object]:
        return {"scope": self.scope, "key": self.key, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "planned_busy_s": self.planned_busy_s,
                "run_s": self.run_s, "ideal_s": self.ideal_s, "good": self.good,
                "scrap": self.scrap, "availability": self.availability,
                "performance": self.performance, "quality": self.quality, "oee": self.oee}


def compute(scope: str, key: str, spans: Iterable[StateSpan], counts: Iterable[CountRow],
            ideal_cycle_s: dict[str, float], start: datetime, end: datetime,
            now: datetime | None = None) -> Oee:
    """OEE of the given spans and counts (already filtered to the scope) over [start, end)."""
    open_end = min(now, end) if now is not None else end
    pbt = 0.0
    run_of: dict[str, float] = {}
    for sp in spans:
        s = max(sp.start, start)
        e = min(sp.end if sp.end is not None else open_end, end)
        d = (e - s).total_seconds()
        if d <= 0:
            continue
        if sp.state == "running":
            run_of[sp.equipment_id] = run_of.get(sp.equipment_id, 0.0) + d
        if sp.state not in NOT_PLANNED:
            pbt += d
    good = scrap = 0
    ideal_of: dict[str, float] = {}
    for c in counts:
        if not (start <= c.ts < end):
            continue
        good += c.good
        scrap += c.scrap
        ideal_of[c.equipment_id] = ideal_of.get(c.equipment_id, 0.0) + \
            ideal_cycle_s.get(c.equipment_id, 0.0) * (c.good + c.scrap)
    ideal = sum(min(v, run_of.get(eq, 0.0)) for eq, v in ideal_of.items())
    return Oee(scope, key, start, end, pbt, sum(run_of.values()), ideal, good, scrap)


# ---------------------------------------------------------------- from the store


def load_spans(store: Store, start: datetime, end: datetime) -> list[StateSpan]:
    esi = EquipmentStateInterval.__table__  # type: ignore[attr-defined]
    q = select(esi.c.equipment_id, esi.c.state, esi.c.start, esi.c.end).where(
        esi.c.start < end, or_(esi.c.end.is_(None), esi.c.end > start))
    with guard(store), store.engine.connect() as conn:
        return [StateSpan(*r) for r in conn.execute(q).all()]


def load_counts(store: Store, start: datetime, end: datetime) -> list[CountRow]:
    ensure_schema(store)
    pc = PRODUCTION_COUNT
    q = select(pc.c.equipment_id, pc.c.ts, pc.c.good, pc.c.scrap, pc.c.shift_id,
               pc.c.line_id).where(pc.c.ts >= start, pc.c.ts < end)
    with guard(store), store.engine.connect() as conn:
        return [CountRow(*r) for r in conn.execute(q).all()]


def _equipment(store: Store) -> dict[str, tuple[str, float]]:
    eq = Equipment.__table__  # type: ignore[attr-defined]
    with guard(store), store.engine.connect() as conn:
        rows = conn.execute(select(eq.c.id, eq.c.line_id, eq.c.ideal_cycle_s)).all()
    return {r[0]: (r[1], float(r[2])) for r in rows}


def by_equipment(store: Store, start: datetime, end: datetime,
                 now: datetime | None = None) -> dict[str, Oee]:
    """OEE of every piece of equipment over [start, end)."""
    eqs = _equipment(store)
    ideal = {k: v[1] for k, v in eqs.items()}
    spans, counts = load_spans(store, start, end), load_counts(store, start, end)
    return {eq: compute("equipment", eq, [s for s in spans if s.equipment_id == eq],
                        [c for c in counts if c.equipment_id == eq], ideal, start, end, now)
            for eq in eqs}


def by_line(store: Store, start: datetime, end: datetime,
            now: datetime | None = None) -> dict[str, Oee]:
    """OEE of every line over [start, end): its equipment's times and pieces summed."""
    eqs = _equipment(store)
    ideal = {k: v[1] for k, v in eqs.items()}
    spans, counts = load_spans(store, start, end), load_counts(store, start, end)
    lines = sorted({v[0] for v in eqs.values()})
    return {ln: compute("line", ln, [s for s in spans if eqs.get(s.equipment_id, ("",))[0] == ln],
                        [c for c in counts if eqs.get(c.equipment_id, ("",))[0] == ln],
                        ideal, start, end, now)
            for ln in lines}


def load_counts_hourly(store: Store, start: datetime, end: datetime) -> list[CountRow] | None:
    """Counts summed per equipment and hour (ts = the hour), or None when the window is
    not on whole hours (or the engine is neither SQLite nor PostgreSQL).

    Exact for any window that starts and ends on whole hours: a count row is the minute
    its pieces were made in, so an hour's rows fall in one window. One row per machine
    hour instead of per minute is what keeps a month of OEE by shift under a second.
    """
    dialect = store.engine.dialect.name
    if dialect not in ("sqlite", "postgresql") or start.minute or start.second \
            or start.microsecond:
        return None
    ensure_schema(store)
    from core.ingest.rows import ts_text

    if dialect == "sqlite":
        sql = ("SELECT equipment_id, substr(ts, 1, 13), sum(good), sum(scrap), shift_id, "
               "line_id FROM production_count WHERE ts >= ? AND ts < ? "
               "GROUP BY equipment_id, substr(ts, 1, 13), shift_id, line_id")
        with guard(store), store.engine.connect() as conn:
            rows = conn.exec_driver_sql(sql, (ts_text(start), ts_text(end))).fetchall()
        return [CountRow(eq, datetime.fromisoformat(h + ":00:00").replace(tzinfo=UTC),
                         int(g), int(sc), sh, ln) for eq, h, g, sc, sh, ln in rows]
    pc = PRODUCTION_COUNT
    hour = func.date_trunc("hour", pc.c.ts)
    q = (select(pc.c.equipment_id, hour, func.sum(pc.c.good), func.sum(pc.c.scrap),
                pc.c.shift_id, pc.c.line_id)
         .where(pc.c.ts >= start, pc.c.ts < end)
         .group_by(pc.c.equipment_id, hour, pc.c.shift_id, pc.c.line_id))
    with guard(store), store.engine.connect() as conn:
        rows = conn.execute(q).fetchall()
    return [CountRow(eq, h.replace(tzinfo=UTC), int(g), int(sc), sh, ln)
            for eq, h, g, sc, sh, ln in rows]


def by_shift(store: Store, start: datetime, end: datetime, now: datetime | None = None,
             equipment_ids: Sequence[str] | None = None) -> list[Oee]:
    """OEE of each shift window in [start, end) (key "<shift> <start ISO>"), over the
    given equipment (default: all).

    Spans and counts are sorted once and each window takes its slice by bisection (a
    month is ~90 windows over ~500,000 count rows); when every window is on whole hours
    the counts are read summed per hour.
    """
    eqs = _equipment(store)
    keep = set(equipment_ids) if equipment_ids is not None else set(eqs)
    ideal = {k: v[1] for k, v in eqs.items()}
    windows = calendar_from_store(store).windows(start, end)
    spans = sorted((s for s in load_spans(store, start, end) if s.equipment_id in keep),
                   key=lambda s: s.start)
    hourly = all(not (w.start.minute or w.start.second or w.start.microsecond
                      or w.end.minute or w.end.second or w.end.microsecond) for w in windows)
    loaded = load_counts_hourly(store, start, end) if hourly else None
    if loaded is None:
        loaded = load_counts(store, start, end)
    counts = sorted((c for c in loaded if c.equipment_id in keep), key=lambda c: c.ts)
    count_ts = [c.ts for c in counts]
    span_starts = [s.start for s in spans]
    open_end = min(now, end) if now is not None else end
    longest = max(((sp.end or open_end) - sp.start for sp in spans), default=timedelta(0))
    out = []
    for w in windows:
        lo = bisect.bisect_left(span_starts, w.start - longest)
        hi = bisect.bisect_left(span_starts, w.end)
        c_lo, c_hi = bisect.bisect_left(count_ts, w.start), bisect.bisect_left(count_ts, w.end)
        out.append(compute("shift", f"{w.shift_id} {w.start.isoformat()}", spans[lo:hi],
                           counts[c_lo:c_hi], ideal, w.start, w.end, now))
    return out
