"""The production context of every piece of equipment, stamped onto every sample.

The context (order, operation, lot, recipe, material batch, shift, operator, line)
lives in memory, one immutable ``Context`` object per equipment: ``stamp`` attaches
the current object to each sample, so the hot path is dict lookups and no copies.
A change replaces the object, so already-stamped samples keep the context they had.

Sources, freshest first:

- context tags (kind ``context``: ``lot``/``order``/``recipe``/``batch``/``operator``
  per equipment) — the machine says what it runs. Numeric values become ids with the
  tag's ``id_format`` (101 with ``"L-{:05d}"`` → ``"L-00101"``); 0, "" and None mean
  "none"; a Bad context sample changes nothing (unknown is not a change).
- the store (``refresh``/``apply_snapshot``): lots in WIP at the equipment, the
  lot → order → recipe chain, the operation of an order on the equipment. A field a
  context tag has set is not overwritten by the store.
- the MES dispatch (``apply_dispatch``, rows of ``core.dispatch``): for machines whose
  ``context_source`` is ``dispatch`` (their context tags are ignored) or
  ``device_then_dispatch`` (used while the device reports no order and no lot), the
  dispatched order, operation, lot, batch and operator; completing it clears them.
- the shift calendar, by the sample's own (plant) time; the operator defaults to the
  first crew member of the shift until an operator tag reports one.

Every change is a ``ContextChange`` event, handed to subscribers right after the
``stamp`` call that caused it and kept (bounded) for ``drain_changes``, so the
production tracker and the engine see lot starts and ends.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import select

from core.config.loader import ResolvedTag
from core.ingest.shifts import ShiftCalendar, ShiftWindow, calendar_from_store
from core.samples import Context, ContextSample, Quality, Sample
from core.store.db import Store
from core.store.models import Equipment, Lot, Operation, ProductionOrder, RoutingStep

# context tag name -> Context field
CONTEXT_TAGS: dict[str, str] = {"lot": "lot_id", "order": "order_id", "recipe": "recipe_id",
                                "batch": "batch_id", "operator": "operator_id"}
_EMPTY = Context()


@dataclass(frozen=True, slots=True)
class ContextChange:
    """One field of one equipment's context changed at ``ts`` (plant time)."""

    equipment_id: str
    field: str  # a Context field: "lot_id", "order_id", "shift_id", ...
    old: str | None
    new: str | None
    ts: datetime | None
    source: str  # "tag" | "store" | "shift" | "dispatch"

    @property
    def lot_ended(self) -> str | None:
        return self.old if self.field == "lot_id" else None

    @property
    def lot_started(self) -> str | None:
        return self.new if self.field == "lot_id" else None


@dataclass
class StoreSnapshot:
    """What the contextualizer needs from the store, read in one go (off the hot path)."""

    line_of: dict[str, str] = field(default_factory=dict)  # equipment -> line
    wip: dict[str, str] = field(default_factory=dict)  # equipment -> lot in WIP there
    lot_order: dict[str, str] = field(default_factory=dict)
    order_recipe: dict[str, str | None] = field(default_factory=dict)
    operations: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    calendar: ShiftCalendar | None = None


def snapshot_from_store(store: Store) -> StoreSnapshot:
    """Read equipment, WIP lots, orders, operations and shifts (blocking I/O)."""
    snap = StoreSnapshot()
    with store.session() as s:
        for eq in s.exec(select(Equipment)).all():
            snap.line_of[eq.id] = eq.line_id
        for lot in s.exec(select(Lot)).all():
            snap.lot_order[lot.id] = lot.order_id
            if lot.status == "wip" and lot.equipment_id:
                snap.wip[lot.equipment_id] = lot.id
        for o in s.exec(select(ProductionOrder)).all():
            snap.order_recipe[o.id] = o.recipe_id
        eligible = {r.id: r.eligible() for r in s.exec(select(RoutingStep)).all()}
        for op in s.exec(select(Operation)).all():
            eqs = [op.equipment_id] if op.equipment_id else eligible.get(op.routing_step_id, [])
            for eq_id in eqs:
                snap.operations.setdefault((op.order_id, eq_id), (op.id, op.step))
    snap.calendar = calendar_from_store(store)
    return snap


def context_id(value: object, id_format: str | None) -> str | None:
    """A context tag's value as an id; 0, "" and None mean no context."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        v = value.strip()
        return v or None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer():
            value = int(value)
    if isinstance(value, int):
        if value == 0:
            return None
        return id_format.format(value) if id_format else str(value)
    return str(value)


Listener = Callable[[list[ContextChange]], None]


class Contextualizer:
    """Stamps samples with their equipment's current context; see the module docstring."""

    def __init__(self, tags: Iterable[ResolvedTag], *, calendar: ShiftCalendar | None = None,
                 line_of: dict[str, str] | None = None, keep_changes: int = 10_000,
                 context_source: dict[str, str] | None = None) -> None:
        self._tag_eq: dict[str, str | None] = {}
        self._ctx_tags: dict[str, tuple[str, str | None]] = {}
        self._current: dict[str, Context] = {}
        line_of = dict(line_of or {})
        for t in tags:
            self._tag_eq[t.id] = t.equipment_id
            if t.equipment_id is None:
                continue
            if t.line_id:
                line_of.setdefault(t.equipment_id, t.line_id)
            if t.spec.kind == "context" and t.name in CONTEXT_TAGS:
                self._ctx_tags[t.id] = (CONTEXT_TAGS[t.name], t.spec.id_format)
        for eq, line in line_of.items():
            self._current[eq] = Context(equipment_id=eq, line_id=line)
        self._from_tag: set[tuple[str, str]] = set()  # (equipment, field) a tag has set
        # equipment -> "dispatch" | "device_then_dispatch" (absent: device, today's way)
        self._source = {eq: src for eq, src in (context_source or {}).items()
                        if src != "device"}
        self._dispatched: dict[str, dict[str, str | None]] = {}  # eq -> fields dispatch set
        self._snap = StoreSnapshot(line_of=line_of)
        self._calendar = calendar
        self._window: ShiftWindow | None = None
        self._pending: list[ContextChange] = []
        self._changes: deque[ContextChange] = deque(maxlen=keep_changes)
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()  # stamp (event loop) vs refresh (a worker thread)
        self.stamped = 0

    # ------------------------------------------------------------ events

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(changes)`` after every stamp/refresh that changed a context."""
        self._listeners.append(listener)

    def drain_changes(self) -> list[ContextChange]:
        """Changes since the last drain (the newest ``keep_changes`` of them)."""
        out = list(self._changes)
        self._changes.clear()
        return out

    def _take_pending(self) -> list[ContextChange]:
        batch, self._pending = self._pending, []
        self._changes.extend(batch)
        return batch

    def _emit(self, batch: list[ContextChange]) -> None:
        """Listeners run outside the lock, in the thread that made the change."""
        if batch:
            for cb in self._listeners:
                cb(batch)

    # ------------------------------------------------------------ state

    def context(self, equipment_id: str) -> Context:
        """The current context of one equipment (an empty one if unknown)."""
        return self._current.get(equipment_id, _EMPTY)

    def contexts(self) -> dict[str, Context]:
        return dict(self._current)

    def _set(self, eq: str, updates: dict[str, str | None], ts: datetime | None,
             source: str) -> Context:
        cur = self._current.get(eq)
        if cur is None:
            cur = Context(equipment_id=eq, line_id=self._snap.line_of.get(eq))
        diff = {k: v for k, v in updates.items() if getattr(cur, k) != v}
        if not diff:
            self._current[eq] = cur
            return cur
        for k, v in diff.items():
            self._pending.append(ContextChange(eq, k, getattr(cur, k), v, ts, source))
        new = dataclasses.replace(cur, **diff)
        self._current[eq] = new
        return new

    def _derived(self, eq: str, ctx: Context, fld: str, value: str | None) -> dict[str, str | None]:
        """A lot implies its order; an order implies its recipe and operation on eq."""
        snap = self._snap
        up: dict[str, str | None] = {fld: value}
        order = ctx.order_id
        if fld == "lot_id" and value is not None and (eq, "order_id") not in self._from_tag:
            order = snap.lot_order.get(value, order)
            up["order_id"] = order
        elif fld == "order_id":
            order = value
        if fld in ("lot_id", "order_id"):
            if (eq, "recipe_id") not in self._from_tag and order is not None:
                up["recipe_id"] = snap.order_recipe.get(order, ctx.recipe_id)
            op = snap.operations.get((order, eq)) if order else None
            up["operation_id"] = op[0] if op else None
            up["step"] = str(op[1]) if op else None
        return up

    def _apply_tag(self, eq: str, fld: str, fmt: str | None, s: Sample) -> None:
        if s.quality == Quality.BAD or self._source.get(eq) == "dispatch":
            return
        value = context_id(s.value, fmt)
        cur = self._current.get(eq) or Context(equipment_id=eq,
                                               line_id=self._snap.line_of.get(eq))
        if getattr(cur, fld) == value and (eq, fld) in self._from_tag:
            return
        self._from_tag.add((eq, fld))
        self._set(eq, self._derived(eq, cur, fld, value), s.source_ts, "tag")

    def _advance_shift(self, w: ShiftWindow, ts: datetime) -> None:
        self._window = w
        default_op = w.crew[0] if w.crew else None
        for eq in list(self._current):
            up: dict[str, str | None] = {"shift_id": w.shift_id}
            if (eq, "operator_id") not in self._from_tag and \
                    not self._dispatched.get(eq, {}).get("operator_id"):
                up["operator_id"] = default_op
            self._set(eq, up, ts, "shift")

    def _shift_for(self, ts: datetime) -> ShiftWindow | None:
        """The shift window of ts; advances every context when ts enters a newer shift."""
        w = self._window
        if w is not None and w.start <= ts < w.end:
            return w
        if self._calendar is None:
            return None
        nw = self._calendar.window_at(ts)
        if nw is not None and (w is None or nw.start >= w.end):
            self._advance_shift(nw, ts)
        return nw

    # ------------------------------------------------------------ hot path

    def stamp(self, samples: Iterable[Sample]) -> list[ContextSample]:
        """Contextualize samples in arrival order; no I/O. NaN/inf become Bad."""
        with self._lock:
            out = self._stamp(samples)
            changes = self._take_pending() if self._pending else []
        if changes:
            self._emit(changes)
        return out

    def _stamp(self, samples: Iterable[Sample]) -> list[ContextSample]:
        out: list[ContextSample] = []
        append = out.append
        tag_eq, ctx_tags, cur = self._tag_eq, self._ctx_tags, self._current
        for s in samples:
            v = s.value
            if v.__class__ is float and not math.isfinite(v):  # type: ignore[arg-type]
                s = s.checked()
            tag = s.tag_id
            ts = s.source_ts
            w = self._window
            if w is None or not (w.start <= ts < w.end):
                w = self._shift_for(ts)
            ct = ctx_tags.get(tag)
            eq = tag_eq.get(tag)
            if ct is not None and eq is not None:
                self._apply_tag(eq, ct[0], ct[1], s)
            ctx = cur.get(eq, _EMPTY) if eq is not None else _EMPTY
            if w is not None and ctx.shift_id != w.shift_id and ctx is not _EMPTY:
                # a late sample from an earlier shift: stamp it with that shift only
                ctx = dataclasses.replace(ctx, shift_id=w.shift_id)
            append(ContextSample(tag, ts, s.value, s.quality, s.reason, ctx))
        self.stamped += len(out)
        return out

    # ------------------------------------------------------------ store

    def apply_snapshot(self, snap: StoreSnapshot, now: datetime | None = None) -> None:
        """Take the store's view (no I/O): lots in WIP, lookups, shift calendar."""
        with self._lock:
            self._apply_snapshot(snap, now)
            changes = self._take_pending()
        self._emit(changes)

    def _apply_snapshot(self, snap: StoreSnapshot, now: datetime | None) -> None:
        snap.line_of = {**self._snap.line_of, **snap.line_of}
        self._snap = snap
        if snap.calendar is not None:
            if self._calendar is None or self._calendar.shifts != snap.calendar.shifts:
                self._window = None  # new shift definitions: find the window again
            self._calendar = snap.calendar
        for eq, line in snap.line_of.items():
            self._set(eq, {"line_id": line}, now, "store")
        for eq in snap.line_of:
            if (eq, "lot_id") in self._from_tag or self._source.get(eq) == "dispatch" \
                    or eq in self._dispatched:
                continue
            lot = snap.wip.get(eq)
            cur = self._current[eq]
            up = self._derived(eq, cur, "lot_id", lot)
            if lot is None and (eq, "order_id") not in self._from_tag:
                up.update(order_id=None, operation_id=None, step=None)
            self._set(eq, up, now, "store")
        if now is not None and self._window is None:
            self._shift_for(now)  # later, the samples' own times move the shift on

    # ------------------------------------------------------------ dispatch

    def apply_dispatch(self, rows: Mapping[str, Any], now: datetime | None = None) -> None:
        """Take the MES dispatch (``core.dispatch.current_dispatch``: equipment -> row with
        order_id, operation_id, lot_id, batch_id, operator_id; no I/O) for the machines
        whose context comes from dispatch. A machine whose row is gone loses what
        dispatch had set. Call it after ``apply_snapshot`` (it uses its recipes/steps)."""
        with self._lock:
            for eq in self._source:
                self._dispatch_one(eq, rows.get(eq), now)
            changes = self._take_pending()
        self._emit(changes)

    def _dispatch_one(self, eq: str, row: Any, now: datetime | None) -> None:
        cur = self._current.get(eq) or Context(equipment_id=eq,
                                               line_id=self._snap.line_of.get(eq))
        if row is not None and self._source[eq] == "device_then_dispatch" and (
                ((eq, "lot_id") in self._from_tag and cur.lot_id)
                or ((eq, "order_id") in self._from_tag and cur.order_id)):
            self._dispatched.pop(eq, None)  # the device says what it runs: it wins
            return
        had = self._dispatched.get(eq)
        if row is None:
            if had is None:
                return
            del self._dispatched[eq]
            clear = {k: None for k in had if getattr(cur, k) == had[k]}
            if "operator_id" in clear and self._window is not None and self._window.crew:
                clear["operator_id"] = self._window.crew[0]  # back to the shift's default
            self._set(eq, clear, now, "dispatch")
            return
        op = row.operation_id
        step = self._snap.operations.get((row.order_id, eq))
        want: dict[str, str | None] = {
            "order_id": row.order_id, "operation_id": op, "lot_id": row.lot_id,
            "batch_id": row.batch_id,
            "recipe_id": self._snap.order_recipe.get(row.order_id, cur.recipe_id),
            "step": str(step[1]) if step and step[0] == op else cur.step}
        if row.operator_id:
            want["operator_id"] = row.operator_id
        self._dispatched[eq] = want
        self._set(eq, want, now, "dispatch")

    def refresh(self, store: Store, now: datetime | None = None) -> None:
        """Re-read the store (blocking; run it off the event loop) and apply it."""
        self.apply_snapshot(snapshot_from_store(store), now)
