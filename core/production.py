"""Production facts from contextualized samples: state intervals, counts, quality.

``ProductionTracker.process(samples)`` is in-memory and cheap (call it on the event
loop with each stamped batch); ``flush(store)`` writes what it gathered in one
transaction (call it off the loop, e.g. every few seconds).

- **State intervals** (``equipment_state_interval``) from the ``state`` tag: codes
  0 idle, 1 running, 2 setup, 3 down_planned, 4 down_unplanned, 5 starved, 6 blocked.
  A change closes the open interval (``end`` = the sample's time) and opens the next;
  the open interval has ``end`` None. The ``state_reason`` context tag is the reason
  code. A reason published within ``reason_grace_s`` of a state change (before or
  after it, in the same batch or not) belongs to the new interval; a reason that
  changes while the state does not updates the open interval (it refines the state,
  it does not split it); otherwise the last known reason carries over.
  **A Bad state sample (comm loss) does not invent a state**: it closes the open
  interval and opens state ``unknown`` with reason ``no data``, which OEE leaves out of
  both planned busy time and run time; the next Good state sample closes it.
- **Counts** (``production_count``, one row per equipment, lot, shift and minute)
  from the ``good_count``/``scrap_count`` counters as deltas (``core.counters``: the
  wrap modulus from the data type or ``rollover``, a device restart counted from 0,
  more parts than the ideal cycle allows refused). Wraps, restarts and refused
  readings become ``CounterNote``s (``drain_notes``): the runtime publishes them and
  raises the data-quality alarm; restarts and refusals are audited with the flush
  (``counter.reset``, ``counter.implausible``).
  The counters' last readings are saved with the deltas (in ``meta``), so after a
  restart the first value counts from there; only a counter never seen before starts
  as a bare baseline. Deltas also go to the operation's qty_good/qty_scrap.
- **Quality measurements** from ``quality`` tag samples (Good ones, when the value
  changes — a polled register repeats the last part's value), against the spec
  limits of the product's characteristic (found from the lot, else the order, else
  the recipe: the twin numbers its own lots, which master data may not know).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, text
from sqlalchemy import select as select_
from sqlmodel import select

from core.audit import append as audit_append
from core.config.loader import ResolvedTag
from core.counters import MODULUS, CounterBook, CounterNote, CounterSpec
from core.samples import ContextSample, Quality
from core.store.db import Store, guard
from core.store.models import (
    PRODUCTION_COUNT,
    Equipment,
    EquipmentStateInterval,
    Lot,
    ProductionOrder,
    QualityCharacteristic,
    QualityMeasurement,
    Recipe,
)
from core.store.types import UTCDateTime

STATES: dict[int, str] = {0: "idle", 1: "running", 2: "setup", 3: "down_planned",
                          4: "down_unplanned", 5: "starved", 6: "blocked"}
UNKNOWN, NO_DATA = "unknown", "no data"
BASELINE_KEY = "production.counter_baselines"

def ensure_schema(target: Engine | Connection | Store) -> None:
    """Create production_count if missing (the migrations make it; kept for old callers)."""
    if isinstance(target, Store):
        target = target.engine
    if isinstance(target, Engine):
        with target.begin() as conn:
            ensure_schema(conn)
        return
    PRODUCTION_COUNT.create(target, checkfirst=True)


@dataclass
class _Equip:
    state: str | None = None
    reason: str = ""
    start: datetime | None = None  # of the open interval
    pending: tuple[str, datetime] | None = None  # a reason not yet given to an interval


@dataclass
class Lookups:
    equipment: set[str] = field(default_factory=set)
    lot_product: dict[str, str] = field(default_factory=dict)
    recipe_product: dict[str, str] = field(default_factory=dict)
    order_product: dict[str, str] = field(default_factory=dict)
    product_char: dict[str, tuple[str, float, float]] = field(default_factory=dict)


def lookups_from_store(store: Store) -> Lookups:
    lk = Lookups()
    with store.session() as s:
        lk.equipment = {e.id for e in s.exec(select(Equipment)).all()}
        lk.lot_product = {lot.id: lot.product_id for lot in s.exec(select(Lot)).all()}
        lk.recipe_product = {r.id: r.product_id for r in s.exec(select(Recipe)).all()}
        lk.order_product = {o.id: o.product_id for o in s.exec(select(ProductionOrder)).all()}
        for c in s.exec(select(QualityCharacteristic).order_by(QualityCharacteristic.id)).all():
            lk.product_char.setdefault(c.product_id, (c.id, c.lsl, c.usl))
    return lk


class ProductionTracker:
    """Turns stamped samples into state intervals, count deltas and quality rows."""

    def __init__(self, tags: Iterable[ResolvedTag], lookups: Lookups | None = None, *,
                 max_step: int = 100_000, reason_grace_s: float = 2.0,
                 ideal_cycle_s: dict[str, float] | None = None,
                 rate_tolerance: float = 1.5, rate_grace_s: float = 5.0) -> None:
        self.role: dict[str, tuple[str, str]] = {}  # tag -> (equipment, role)
        specs: dict[str, CounterSpec] = {}
        ideal = ideal_cycle_s or {}
        for t in tags:
            if t.equipment_id is None:
                continue
            role = None
            if t.spec.kind == "state" and t.name == "state":
                role = "state"
            elif t.name == "state_reason":
                role = "reason"
            elif t.spec.kind == "counter" and t.name in ("good_count", "scrap_count"):
                role = "good" if t.name == "good_count" else "scrap"
                rollover = getattr(t.spec, "rollover", None)
                mod = rollover or MODULUS.get(t.spec.data_type)
                specs[t.id] = CounterSpec(t.equipment_id, mod, ideal.get(t.equipment_id))
            elif t.spec.kind == "quality":
                role = "quality"
            if role:
                self.role[t.id] = (t.equipment_id, role)
        self.lk = lookups or Lookups()
        self.counters = CounterBook(specs, max_step=max_step, rate_tolerance=rate_tolerance,
                                    grace_s=rate_grace_s)
        self._notes: list[CounterNote] = []  # for drain_notes (the event bus, alarms)
        self._audit_notes: list[CounterNote] = []  # restarts and refusals, for the audit
        self.reason_grace = timedelta(seconds=reason_grace_s)
        self._latest: datetime | None = None
        self.eq: dict[str, _Equip] = {}
        self._last_quality: dict[str, float] = {}
        self._ops: list[tuple[str, dict[str, object]]] = []
        self._counts: dict[tuple[object, ...], list[int]] = {}
        self._measurements: list[dict[str, object]] = []
        self._lock = threading.Lock()  # process (event loop) vs flush (a worker thread)

    # ------------------------------------------------------------ setup

    def load(self, store: Store) -> None:
        """Lookups and the open intervals from the store (so a restart continues them)."""
        ensure_schema(store)
        self.lk = lookups_from_store(store)
        with guard(store), store.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT equipment_id, state, reason_code, start FROM equipment_state_interval "
                "WHERE \"end\" IS NULL")).fetchall()
        conv = UTCDateTime().process_result_value
        for eq, state, reason, start in rows:
            self.eq[eq] = _Equip(state, reason or "", conv(start, None))
        with store.session() as s:
            self.counters.set_ideal_cycle({e.id: e.ideal_cycle_s for e in
                                           s.exec(select(Equipment)).all()})
        saved = store.get_meta(BASELINE_KEY)
        if saved:
            self.counters.load(json.loads(saved))

    @property
    def wraps(self) -> int:
        return self.counters.wraps

    @property
    def resets(self) -> int:
        return self.counters.resets

    def drain_notes(self) -> list[CounterNote]:
        """Counter wraps, restarts and refusals since the last call (for events, alarms)."""
        with self._lock:
            out, self._notes = self._notes, []
        return out

    # ------------------------------------------------------------ in memory

    def process(self, samples: Iterable[ContextSample]) -> None:
        """Fold a stamped batch into intervals, counts and measurements (no I/O)."""
        with self._lock:
            self._process(samples)

    def _process(self, samples: Iterable[ContextSample]) -> None:
        role = self.role
        s: ContextSample | None = None
        for s in samples:
            r = role.get(s.tag_id)
            if r is None:
                continue
            if self._latest is None or s.source_ts > self._latest:
                self._latest = s.source_ts
            eq, kind = r
            if kind == "state":
                self._state(eq, s)
            elif kind == "reason":
                self._reason(eq, s)
            elif kind == "quality":
                self._quality(eq, s)
            else:
                self._count(eq, kind, s)
        if s is not None and (self._latest is None or s.source_ts > self._latest):
            self._latest = s.source_ts  # plant time moves on with any tag

    def _open(self, eq: str, e: _Equip, state: str, reason: str, ts: datetime) -> None:
        if e.state is not None:
            self._ops.append(("close", {"eq": eq, "end": max(ts, e.start or ts)}))
        start = max(ts, e.start) if e.start else ts
        e.state, e.start = state, start
        if state != UNKNOWN:
            e.reason = reason  # "no data" is ours, not the machine's reason
        self._ops.append(("open", {"eq": eq, "state": state, "reason": reason, "start": start}))

    def _settle(self, eq: str, e: _Equip, now: datetime | None) -> None:
        """A pending reason older than the grace period refines the open interval."""
        if e.pending is None or now is None or now - e.pending[1] <= self.reason_grace:
            return
        reason = e.pending[0]
        e.pending = None
        if e.state is not None and e.state != UNKNOWN:
            self._ops.append(("reason", {"eq": eq, "reason": reason}))

    def _state(self, eq: str, s: ContextSample) -> None:
        if eq not in self.lk.equipment and self.lk.equipment:
            return
        e = self.eq.setdefault(eq, _Equip())
        ts = s.source_ts
        if e.pending is not None and ts - e.pending[1] > self.reason_grace:
            self._settle(eq, e, ts)
        if s.quality == Quality.BAD or s.value is None:
            if e.state != UNKNOWN:
                self._open(eq, e, UNKNOWN, NO_DATA, ts)
            return
        try:
            code = int(s.value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return
        state = STATES.get(code, UNKNOWN)
        if state == e.state:
            return
        # a reason published with the change (within the grace) belongs to the new state
        reason = e.reason
        if e.pending is not None and abs(e.pending[1] - ts) <= self.reason_grace:
            reason = e.pending[0]
            e.pending = None
        if state == UNKNOWN:
            reason = f"state code {code}"
        self._open(eq, e, state, reason, ts)

    def _reason(self, eq: str, s: ContextSample) -> None:
        if s.quality == Quality.BAD:
            return
        reason = "" if s.value is None else str(s.value).strip()
        e = self.eq.setdefault(eq, _Equip())
        if e.pending is not None:
            self._settle(eq, e, e.pending[1] + 2 * self.reason_grace)  # the older one first
        if reason == e.reason:
            return
        e.reason = reason
        if e.state is not None and s.source_ts <= (e.start or s.source_ts) + self.reason_grace:
            # just after the change that opened the interval: it is that state's reason
            if e.state != UNKNOWN:
                self._ops.append(("reason", {"eq": eq, "reason": reason}))
            return
        e.pending = (reason, s.source_ts)

    def _count(self, eq: str, kind: str, s: ContextSample) -> None:
        v = s.value
        if s.quality == Quality.BAD or v is None or isinstance(v, str):
            return
        if isinstance(v, float) and not math.isfinite(v):
            return
        delta, note = self.counters.reading(s.tag_id, int(v), s.source_ts)
        if note is not None:
            self._notes.append(note)
            if len(self._notes) > 1000:
                del self._notes[:500]  # nobody draining: keep the newest
            if note.kind in ("reset", "implausible"):
                self._audit_notes.append(note)
        if delta <= 0:
            return
        c = s.ctx
        minute = s.source_ts.replace(second=0, microsecond=0)
        key = (eq, c.line_id, c.lot_id, c.order_id, c.operation_id, c.shift_id, minute)
        acc = self._counts.setdefault(key, [0, 0])
        acc[0 if kind == "good" else 1] += delta

    def _quality(self, eq: str, s: ContextSample) -> None:
        v = s.value
        if s.quality != Quality.GOOD or v is None or isinstance(v, str):
            return
        v = float(v)
        if not math.isfinite(v) or self._last_quality.get(s.tag_id) == v:
            return
        self._last_quality[s.tag_id] = v
        c = s.ctx
        lk = self.lk
        product = (lk.lot_product.get(c.lot_id or "") or lk.order_product.get(c.order_id or "")
                   or lk.recipe_product.get(c.recipe_id or ""))
        spec = lk.product_char.get(product or "")
        if spec is None:
            return  # no characteristic to measure against
        char_id, lsl, usl = spec
        self._measurements.append({
            "lot": c.lot_id,  # checked against the store's lots when written
            "eq": eq if eq in lk.equipment else None, "char": char_id, "value": v,
            "lsl": lsl, "usl": usl, "in_spec": lsl <= v <= usl, "ts": s.source_ts})

    @property
    def pending(self) -> int:
        return len(self._ops) + len(self._counts) + len(self._measurements)

    # ------------------------------------------------------------ store

    def flush(self, store: Store) -> int:
        """Write gathered intervals, counts and measurements in one transaction."""
        with self._lock:
            for eq, e in self.eq.items():
                self._settle(eq, e, self._latest)
            ops, counts, meas = self._ops, self._counts, self._measurements
            notes = self._audit_notes
            dirty = self.counters.dirty
            if not (ops or counts or meas or notes or dirty):
                return 0
            self._ops, self._counts, self._measurements = [], {}, []
            self._audit_notes = []
            # the last readings the driver delivered, not only the ones that booked parts
            baselines = json.dumps(self.counters.dump()) if (counts or notes or dirty) \
                else None
        esi = EquipmentStateInterval.__table__  # type: ignore[attr-defined]
        qm = QualityMeasurement.__table__  # type: ignore[attr-defined]
        try:
            with store.begin() as conn:
                ensure_schema(conn)
                for op, p in ops:
                    if op == "close":
                        conn.execute(esi.update().where(esi.c.equipment_id == p["eq"],
                                                        esi.c.end.is_(None))
                                     .values(end=p["end"]))
                    elif op == "open":
                        conn.execute(esi.insert().values(equipment_id=p["eq"], state=p["state"],
                                                         reason_code=p["reason"],
                                                         start=p["start"], end=None))
                    else:
                        conn.execute(esi.update().where(esi.c.equipment_id == p["eq"],
                                                        esi.c.end.is_(None))
                                     .values(reason_code=p["reason"]))
                if counts:
                    rows = [{"equipment_id": k[0], "line_id": k[1], "lot_id": k[2],
                             "order_id": k[3], "operation_id": k[4], "shift_id": k[5],
                             "ts": k[6], "good": g, "scrap": sc}
                            for k, (g, sc) in counts.items()]
                    conn.execute(PRODUCTION_COUNT.insert(), rows)
                    ops_qty = [{"op": r["operation_id"], "good": r["good"], "scrap": r["scrap"]}
                               for r in rows if r["operation_id"]]
                    if ops_qty:
                        conn.execute(text("UPDATE operation SET qty_good = qty_good + :good,"
                                          " qty_scrap = qty_scrap + :scrap WHERE id = :op"),
                                     ops_qty)
                if baselines is not None:
                    # the counters' last readings commit with the deltas they produced, so a
                    # restart counts from there: nothing counted twice or lost
                    conn.execute(text("INSERT INTO meta (key, value) VALUES (:k, :v) "
                                      "ON CONFLICT(key) DO UPDATE SET value = excluded.value"),
                                 {"k": BASELINE_KEY, "v": baselines})
                for n in notes:
                    audit_append(conn, "system", f"counter.{n.kind}", "tag", n.tag_id,
                                 n.as_dict(), ts=n.ts)
                if meas:
                    # lots the plant numbered are registered by the ingest upkeep; one the
                    # store does not know (yet) is measured without a lot, never refused
                    raw = {m["lot"] for m in meas if m["lot"]}
                    lot_t = Lot.__table__  # type: ignore[attr-defined]
                    known = {r[0] for r in conn.execute(
                        select_(lot_t.c.id).where(lot_t.c.id.in_(raw)))} if raw else set()
                    conn.execute(qm.insert(), [
                        {"lot_id": m["lot"] if m["lot"] in known else None,
                         "equipment_id": m["eq"],
                         "characteristic_id": m["char"], "value": m["value"], "lsl": m["lsl"],
                         "usl": m["usl"], "in_spec": m["in_spec"], "ts": m["ts"]}
                        for m in meas])
        except Exception:
            # keep them for the next flush: production facts are not dropped on a lock
            with self._lock:
                self._ops = ops + self._ops
                for k, v in counts.items():
                    acc = self._counts.setdefault(k, [0, 0])
                    acc[0] += v[0]
                    acc[1] += v[1]
                self._measurements = meas + self._measurements
                self._audit_notes = notes + self._audit_notes
                self.counters.dirty = True
            raise
        return len(ops) + len(counts) + len(meas) + len(notes)
