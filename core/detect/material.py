"""Projected material shortage: will line-side stock last through the plan?

``project_shortage`` is pure (stock, measured consumption rate, planned demand →
when the stock runs out), so it is tested without a store; ``line_side_inputs`` is
the store query that feeds it. Planned demand is consumed evenly over each
operation's planned interval; an operation already running is consumed at the
measured rate instead when there is one, because the plan's rate is a guess and the
counter is a fact.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from core.clock import ensure_utc
from core.detect.events import Detection, Priority, escalate
from core.statuses import OPERATION_PLANNABLE


@dataclass(frozen=True, slots=True)
class PlannedDemand:
    start: datetime
    end: datetime
    qty: float  # of the material, over the whole interval
    ref: str = ""  # the operation it is for


@dataclass(frozen=True, slots=True)
class ShortageProjection:
    material_id: str
    stock: float
    demand_in_horizon: float
    runout_at: datetime | None  # None: the stock lasts the horizon
    horizon_h: float
    refs: tuple[str, ...] = field(default_factory=tuple)  # operations that go short

    @property
    def short(self) -> bool:
        return self.runout_at is not None

    @property
    def shortfall(self) -> float:
        return max(0.0, self.demand_in_horizon - self.stock)

    def hours_to_runout(self, now: datetime) -> float | None:
        if self.runout_at is None:
            return None
        return (self.runout_at - ensure_utc(now)).total_seconds() / 3600


def project_shortage(stock: float, rate_per_h: float, demand: Sequence[PlannedDemand],
                     now: datetime, horizon_h: float = 8.0,
                     material_id: str = "") -> ShortageProjection:
    """When cumulative consumption from ``now`` passes ``stock`` within the horizon."""
    now = ensure_utc(now)
    end = now + timedelta(hours=horizon_h)
    segs: list[tuple[datetime, datetime, float, str]] = []  # start, end, rate/h, ref
    running = False
    for d in demand:
        a, b = ensure_utc(d.start), ensure_utc(d.end)
        if b <= now or a >= end or d.qty <= 0:
            continue
        span_h = max((b - a).total_seconds() / 3600, 1e-9)
        if a <= now and rate_per_h > 0:  # in progress: what is left, at the measured rate
            left = d.qty * (b - now).total_seconds() / 3600 / span_h
            segs.append((now, now + timedelta(hours=left / rate_per_h), rate_per_h, d.ref))
            running = True
        else:
            segs.append((max(a, now), b, d.qty / span_h, d.ref))
    if not running and rate_per_h > 0 and not segs:
        segs.append((now, end, rate_per_h, "measured rate"))
    cuts = sorted({now, end, *(s[0] for s in segs), *(s[1] for s in segs)})
    cuts = [c for c in cuts if now <= c <= end]
    used = 0.0
    runout: datetime | None = None
    short_refs: list[str] = []
    for a, b in itertools.pairwise(cuts):
        live = [s for s in segs if s[0] <= a and s[1] >= b]
        rate = sum(s[2] for s in live)
        step = rate * (b - a).total_seconds() / 3600
        if runout is None and rate > 0 and used + step > stock:
            runout = a + timedelta(hours=max(0.0, stock - used) / rate)
        if runout is not None:
            short_refs.extend(s[3] for s in live if s[3] not in short_refs)
        used += step
    return ShortageProjection(material_id, float(stock), used, runout, horizon_h,
                              tuple(short_refs))


class MaterialDetector:
    """Turns projections into detections: one open problem per line and material."""

    kind = "material"

    def __init__(self, detector_id: str, priority: Priority = "medium", *,
                 horizon_h: float = 8.0, lead_time_h: float = 2.0) -> None:
        self.detector_id = detector_id
        self.priority: Priority = priority
        self.horizon_h = horizon_h
        self.lead_time_h = lead_time_h
        self._active: dict[str, datetime] = {}

    def check(self, line_id: str, material_id: str, stock: float, rate_per_h: float,
              demand: Sequence[PlannedDemand], now: datetime) -> list[Detection]:
        p = project_shortage(stock, rate_per_h, demand, now, self.horizon_h, material_id)
        key = f"material:{line_id}:{material_id}"
        now = ensure_utc(now)
        values = {"stock": p.stock, "demand_in_horizon": p.demand_in_horizon,
                  "shortfall": p.shortfall, "rate_per_h": rate_per_h}
        evidence = {"horizon_h": self.horizon_h, "lead_time_h": self.lead_time_h,
                    "runout_at": p.runout_at.isoformat() if p.runout_at else None,
                    "operations": list(p.refs), "material_id": material_id,
                    "shortage_qty": p.shortfall,
                    "short_at": p.runout_at.isoformat() if p.runout_at else None}
        if p.short and key not in self._active:
            self._active[key] = now
            h = p.hours_to_runout(now) or 0.0
            prio = escalate(self.priority) if h < self.lead_time_h else self.priority
            return [Detection(
                kind="material", detector_id=self.detector_id, problem_key=key, priority=prio,
                onset=now, summary=(f"line {line_id}: {material_id} runs out in {h:.1f} h "
                                    f"(stock {p.stock:.4g}, {p.shortfall:.4g} short over "
                                    f"the next {self.horizon_h:g} h)"),
                line_id=line_id, value=p.stock, limit=p.demand_in_horizon, values=values,
                evidence=evidence)]
        if not p.short and key in self._active:
            onset = self._active.pop(key)
            return [Detection(
                kind="material", detector_id=self.detector_id, problem_key=key,
                priority=self.priority, onset=onset, ts=now, cleared=True,
                summary=f"line {line_id}: {material_id} covered for the next "
                        f"{self.horizon_h:g} h", line_id=line_id, value=p.stock,
                values=values, evidence=evidence)]
        return []


def line_side_inputs(store: object, line_id: str, now: datetime, horizon_h: float = 8.0
                     ) -> dict[str, tuple[float, list[PlannedDemand]]]:
    """Line-side stock ("<line>-LS") and the planned demand of open operations, per material."""
    from core.store.models import Operation, ProductionOrder, RoutingStep, Stock

    now = ensure_utc(now)
    end = now + timedelta(hours=horizon_h)
    out: dict[str, tuple[float, list[PlannedDemand]]] = {}
    engine = store.engine  # type: ignore[attr-defined]
    with engine.connect() as c:
        st = Stock.__table__  # type: ignore[attr-defined]
        for r in c.execute(select(st.c.material_id, st.c.quantity)
                           .where(st.c.location_id == f"{line_id}-LS")):
            qty, dem = out.get(r.material_id, (0.0, []))
            out[r.material_id] = (qty + float(r.quantity), dem)
        op = Operation.__table__  # type: ignore[attr-defined]
        po = ProductionOrder.__table__  # type: ignore[attr-defined]
        rs = RoutingStep.__table__  # type: ignore[attr-defined]
        q = (select(op.c.id, op.c.planned_start, op.c.planned_end, op.c.qty_good,
                    op.c.qty_scrap, po.c.quantity, rs.c.material_id, rs.c.qty_per_unit)
             .join(po, po.c.id == op.c.order_id).join(rs, rs.c.id == op.c.routing_step_id)
             .where(po.c.line_id == line_id, rs.c.material_id.is_not(None),
                    op.c.status.in_(OPERATION_PLANNABLE),
                    op.c.planned_start.is_not(None), op.c.planned_end.is_not(None)))
        for r in c.execute(q):
            a, b = ensure_utc(r.planned_start), ensure_utc(r.planned_end)
            if b <= now or a >= end:
                continue
            left = max(0, r.quantity - r.qty_good - r.qty_scrap) * float(r.qty_per_unit)
            qty, dem = out.get(r.material_id, (0.0, []))
            dem.append(PlannedDemand(a, b, left, r.id))
            out[r.material_id] = (qty, dem)
    return out
