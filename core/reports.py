"""Reports for plant managers: OEE, downtime Pareto and scrap rate, grouped four ways.

OEE uses the ISO 22400-2 definitions of ``core.oee`` (availability = APT / PBT,
performance = ideal time / APT, quality = good / produced) by handing it state spans
and counts already cut to each group, so the figures here and in the console agree.

Groups: ``plant`` (everything), ``line``, ``equipment``, ``shift`` (the shift id, all days
of the range together: "is nights worse?") and ``product``. Time is attributed to a
product through the operations that ran on the equipment (actual start → actual end);
time with no operation running is ``(none)``. Pieces go to a product by the count row's
order (else its lot).

The range is [start, end); an interval still open counts up to ``end``. Without a range
the report covers all the data in the store (see ``data_range``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select

from core.clock import ensure_utc, utcnow
from core.ingest.shifts import calendar_from_store
from core.oee import CountRow, Oee, StateSpan, compute
from core.production import PRODUCTION_COUNT, ensure_schema
from core.store.db import Store, guard
from core.store.models import (
    Equipment,
    EquipmentStateInterval,
    Lot,
    Operation,
    ProductionOrder,
)

GROUPS = ("plant", "line", "equipment", "shift", "product")
# the availability losses of core.oee: planned busy time that was not run time, so the
# downtime report and the OEE report's availability always account for the same hours
DOWNTIME_STATES = ("down_unplanned", "setup", "starved", "blocked")
NOT_COUNTED = ("idle", "down_planned")  # not planned busy time (--states can add them)
LOSS_STATES = ("down_unplanned", "setup", "starved", "blocked", "idle", "down_planned")
NONE = "(none)"

_ESI = EquipmentStateInterval.__table__  # type: ignore[attr-defined]
_EQ = Equipment.__table__  # type: ignore[attr-defined]
_OP = Operation.__table__  # type: ignore[attr-defined]
_PO = ProductionOrder.__table__  # type: ignore[attr-defined]
_LOT = Lot.__table__  # type: ignore[attr-defined]


class ReportError(Exception):
    """A report asked for something that does not exist: str() says what."""


@dataclass(frozen=True)
class Piece:
    """A state interval (clipped to the range) cut to one group."""

    key: str
    interval_id: int
    equipment_id: str
    state: str
    reason: str
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


# ---------------------------------------------------------------- range


def data_range(store: Store) -> tuple[datetime, datetime] | None:
    """Earliest and latest time in the state intervals and production counts."""
    ensure_schema(store)
    pc = PRODUCTION_COUNT
    with guard(store), store.engine.connect() as c:
        a = c.execute(select(func.min(_ESI.c.start), func.max(_ESI.c.start),
                             func.max(_ESI.c.end))).one()
        b = c.execute(select(func.min(pc.c.ts), func.max(pc.c.ts))).one()
    lo = [ensure_utc(v) for v in (a[0], b[0]) if v is not None]
    hi = [ensure_utc(v) for v in (a[1], a[2]) if v is not None]
    if b[1] is not None:
        hi.append(ensure_utc(b[1]) + timedelta(minutes=1))  # a count row covers its minute
    if not lo or not hi:
        return None
    return min(lo), max(hi)


def resolve_range(store: Store, since: datetime | None, until: datetime | None,
                  now: datetime | None = None) -> tuple[datetime, datetime]:
    """The asked range, defaults filled from the data: from its start to now (or its end)."""
    now = ensure_utc(now or utcnow())
    have = data_range(store)
    start = since or (have[0] if have else now - timedelta(days=1))
    end = until or (max(now, have[1]) if have else now)
    if end <= start:
        end = start + timedelta(seconds=1)
    return ensure_utc(start), ensure_utc(end)


# ---------------------------------------------------------------- loading and grouping


def _equipment(store: Store) -> dict[str, tuple[str, float]]:
    with guard(store), store.engine.connect() as c:
        return {r.id: (r.line_id, float(r.ideal_cycle_s)) for r in
                c.execute(select(_EQ.c.id, _EQ.c.line_id, _EQ.c.ideal_cycle_s))}


def _intervals(store: Store, start: datetime, end: datetime) -> list[Any]:
    q = select(_ESI).where(_ESI.c.start < end, or_(_ESI.c.end.is_(None), _ESI.c.end > start))
    with guard(store), store.engine.connect() as c:
        return list(c.execute(q.order_by(_ESI.c.start, _ESI.c.id)).all())


Slots = dict[str, list[tuple[datetime, datetime, str]]]  # equipment ('*' = all) -> windows


def _product_slots(store: Store, start: datetime, end: datetime) -> Slots:
    """Per equipment: when which product ran there (from the operations' actual times)."""
    q = (select(_OP.c.equipment_id, _OP.c.actual_start, _OP.c.actual_end, _PO.c.product_id)
         .join(_PO, _PO.c.id == _OP.c.order_id)
         .where(_OP.c.equipment_id.is_not(None), _OP.c.actual_start.is_not(None),
                _OP.c.actual_start < end,
                or_(_OP.c.actual_end.is_(None), _OP.c.actual_end > start)))
    out: Slots = defaultdict(list)
    with guard(store), store.engine.connect() as c:
        for r in c.execute(q):
            s = ensure_utc(r.actual_start)
            e = ensure_utc(r.actual_end) if r.actual_end is not None else end
            out[r.equipment_id].append((s, e, r.product_id))
    for v in out.values():
        v.sort()
    return out


def _cut(start: datetime, end: datetime,
         slots: list[tuple[datetime, datetime, str]]) -> list[tuple[datetime, datetime, str]]:
    """[start, end) cut along the slots; what no slot covers is ``(none)``."""
    out: list[tuple[datetime, datetime, str]] = []
    at = start
    for s, e, key in slots:
        if e <= at or s >= end:
            continue
        if s > at:
            out.append((at, s, NONE))
            at = s
        stop = min(e, end)
        if stop > at:
            out.append((at, stop, key))
            at = stop
        if at >= end:
            break
    if at < end:
        out.append((at, end, NONE))
    return out


def pieces(store: Store, by: str, start: datetime, end: datetime) -> list[Piece]:
    """State intervals clipped to [start, end) and cut to the groups of ``by``."""
    if by not in GROUPS:
        raise ReportError(f"unknown grouping {by!r}; one of {', '.join(GROUPS)}")
    eqs = _equipment(store)
    if by == "shift":
        slots: Slots = {"*": [(w.start, w.end, w.shift_id) for w in
                              calendar_from_store(store).windows(start, end)]}
    elif by == "product":
        slots = _product_slots(store, start, end)
    else:
        slots = {}
    out: list[Piece] = []
    for r in _intervals(store, start, end):
        s = max(ensure_utc(r.start), start)
        e = min(ensure_utc(r.end) if r.end is not None else end, end)
        if e <= s:
            continue
        if by in ("shift", "product"):
            cuts = _cut(s, e, slots.get("*", slots.get(r.equipment_id, [])))
        else:
            key = {"plant": "plant", "equipment": r.equipment_id,
                   "line": eqs.get(r.equipment_id, (NONE,))[0]}[by]
            cuts = [(s, e, key)]
        out.extend(Piece(k, int(r.id), r.equipment_id, r.state, r.reason_code or "", a, b)
                   for a, b, k in cuts)
    return out


def count_key(store: Store, by: str) -> Callable[[CountRow, str], str]:
    """The group of a production count row (given the row and its product)."""
    if by == "plant":
        return lambda c, _: "plant"
    if by == "equipment":
        return lambda c, _: c.equipment_id
    if by == "line":
        eqs = _equipment(store)
        return lambda c, _: c.line_id or eqs.get(c.equipment_id, (NONE,))[0]
    if by == "shift":
        cal = calendar_from_store(store)

        def shift_of(c: CountRow, _: str) -> str:
            w = cal.window_at(c.ts)
            return w.shift_id if w is not None else NONE
        return shift_of
    return lambda _, product: product


def _counts(store: Store, start: datetime, end: datetime) -> list[tuple[CountRow, str]]:
    """Count rows in [start, end) with their product (by order, else by lot)."""
    ensure_schema(store)
    pc = PRODUCTION_COUNT
    po, lot = _PO.alias("po"), _LOT.alias("lt")
    q = (select(pc.c.equipment_id, pc.c.ts, pc.c.good, pc.c.scrap, pc.c.shift_id,
                pc.c.line_id, func.coalesce(po.c.product_id, lot.c.product_id))
         .outerjoin(po, po.c.id == pc.c.order_id).outerjoin(lot, lot.c.id == pc.c.lot_id)
         .where(pc.c.ts >= start, pc.c.ts < end).order_by(pc.c.ts, pc.c.id))
    with guard(store), store.engine.connect() as c:
        return [(CountRow(r[0], ensure_utc(r[1]), int(r[2]), int(r[3]), r[4], r[5]),
                 r[6] or NONE) for r in c.execute(q)]


# ---------------------------------------------------------------- reports


def oee_report(store: Store, by: str, start: datetime, end: datetime) -> list[Oee]:
    """OEE per group over [start, end), groups sorted by key; ISO 22400 via core.oee."""
    ideal = {k: v[1] for k, v in _equipment(store).items()}
    ps = pieces(store, by, start, end)
    key_of = count_key(store, by)
    spans: dict[str, list[StateSpan]] = defaultdict(list)
    for p in ps:
        spans[p.key].append(StateSpan(p.equipment_id, p.state, p.start, p.end))
    rows: dict[str, list[CountRow]] = defaultdict(list)
    for c, product in _counts(store, start, end):
        rows[key_of(c, product)].append(c)
    keys = sorted(set(spans) | set(rows))
    if by == "equipment":
        keys = sorted(set(keys) | set(ideal))
    elif by == "plant":
        keys = ["plant"]
    return [compute(by, k, spans.get(k, []), rows.get(k, []), ideal, start, end, end)
            for k in keys]


def downtime_report(store: Store, by: str, start: datetime, end: datetime,
                    states: Iterable[str] = DOWNTIME_STATES) -> list[dict[str, Any]]:
    """Downtime Pareto per group: reason codes by lost time, largest first, with shares.

    ``stops`` counts the state intervals behind a reason (an interval cut by a shift
    boundary counts in both shifts). A stop without a reason code shows as ``(state)``.
    """
    wanted = set(states)
    agg: dict[tuple[str, str], list[Any]] = {}
    for p in pieces(store, by, start, end):
        if p.state not in wanted:
            continue
        reason = p.reason or f"({p.state})"
        cell = agg.setdefault((p.key, reason), [0.0, set(), set()])
        cell[0] += p.seconds
        cell[1].add(p.interval_id)
        cell[2].add(p.state)
    totals: dict[str, float] = defaultdict(float)
    for (key, _), cell in agg.items():
        totals[key] += cell[0]
    out: list[dict[str, Any]] = []
    for key in sorted(totals):
        items = sorted(((r, c) for (k, r), c in agg.items() if k == key),
                       key=lambda x: (-x[1][0], x[0]))
        cum = 0.0
        for reason, (secs, ids, sts) in items:
            cum += secs
            out.append({"group": key, "reason": reason, "states": sorted(sts),
                        "state": ", ".join(sorted(sts)),
                        "seconds": secs, "hours": secs / 3600, "stops": len(ids),
                        "share": secs / totals[key] if totals[key] else None,
                        "cumulative_share": cum / totals[key] if totals[key] else None})
    return out


def scrap_report(store: Store, by: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Good, scrap and scrap rate (scrap / produced, None without production) per group."""
    if by not in GROUPS:
        raise ReportError(f"unknown grouping {by!r}; one of {', '.join(GROUPS)}")
    key_of = count_key(store, by)
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for c, product in _counts(store, start, end):
        s = sums[key_of(c, product)]
        s[0] += c.good
        s[1] += c.scrap
    if by == "plant":
        sums.setdefault("plant", [0, 0])
    out = []
    for key in sorted(sums):
        good, scrap = sums[key]
        total = good + scrap
        out.append({"group": key, "good": good, "scrap": scrap, "produced": total,
                    "scrap_rate": scrap / total if total else None})
    return out


def oee_rows(items: Iterable[Oee]) -> list[dict[str, Any]]:
    """JSON-ready OEE rows, hours added for people."""
    out = []
    for o in items:
        d = o.as_dict()
        d["group"] = d.pop("key")
        d["planned_busy_h"] = o.planned_busy_s / 3600
        d["run_h"] = o.run_s / 3600
        out.append(d)
    return out


def oee_by_shift_window(store: Store, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """One OEE row per equipment per shift window (the export's grain, for trends)."""
    eqs = _equipment(store)
    ideal = {k: v[1] for k, v in eqs.items()}
    spans = [StateSpan(r.equipment_id, r.state, ensure_utc(r.start),
                       ensure_utc(r.end) if r.end is not None else None)
             for r in _intervals(store, start, end)]
    counts = [c for c, _ in _counts(store, start, end)]
    by_eq_spans: dict[str, list[StateSpan]] = defaultdict(list)
    for s in spans:
        by_eq_spans[s.equipment_id].append(s)
    by_eq_counts: dict[str, list[CountRow]] = defaultdict(list)
    for c in counts:
        by_eq_counts[c.equipment_id].append(c)
    out = []
    for w in calendar_from_store(store).windows(start, end):
        for eq in sorted(eqs):
            o = compute("equipment", eq, by_eq_spans.get(eq, []), by_eq_counts.get(eq, []),
                        ideal, w.start, w.end, end)
            d = o.as_dict()
            out.append({"shift_id": w.shift_id, "window_start": w.start,
                        "window_end": w.end, "equipment_id": eq, "line_id": eqs[eq][0],
                        **{k: d[k] for k in ("planned_busy_s", "run_s", "ideal_s", "good",
                                             "scrap", "availability", "performance",
                                             "quality", "oee")}})
    return out
