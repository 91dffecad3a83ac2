"""Dispatch from the MES side: a person starts, pauses, resumes and completes an order's
operation on a machine, when the machine cannot say what it runs (most PLCs publish no
order or lot tags).

The dispatched context lives in the store (table ``dispatch``, one row per machine with
an operation on it), so the CLI, a second console and the runtime's contextualizer
(``Contextualizer.apply_dispatch``, on every ingest upkeep) share it across processes.
Where a line or machine takes its context from dispatch (``context_source`` in the
config), every sample of that machine is stamped with the order, operation, lot, batch
and operator of its row; lot registration, genealogy, counts and OEE then follow exactly
as for device context tags.

Every act is role-checked (``FLOOR_ROLES["dispatch"]``: operator, shift_lead, admin),
PIN-signed when ``[auth] sign_dispatch`` is set, and audited (``dispatch.start`` ...) in
the transaction that makes the change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, select, text, update

from core import audit
from core.audit import record_hash
from core.auth import FLOOR_ROLES, Authenticator, AuthError
from core.clock import Clock
from core.statuses import LOT_MOVABLE, ORDER_OPEN
from core.store.db import Store
from core.store.models import (
    DISPATCH,
    Equipment,
    Lot,
    Operation,
    Product,
    ProductionOrder,
    RoutingStep,
)
from core.store.types import UTCDateTime

Act = Literal["start", "pause", "resume", "complete"]
ACTS: tuple[Act, ...] = ("start", "pause", "resume", "complete")

ORDER = ProductionOrder.__table__  # type: ignore[attr-defined]
OP = Operation.__table__  # type: ignore[attr-defined]
LOT = Lot.__table__  # type: ignore[attr-defined]
STEP = RoutingStep.__table__  # type: ignore[attr-defined]
EQUIP = Equipment.__table__  # type: ignore[attr-defined]
PRODUCT = Product.__table__  # type: ignore[attr-defined]
_TS = UTCDateTime()


class DispatchError(Exception):
    """A dispatch that cannot be done; str() says why in words a person can act on."""


@dataclass(frozen=True)
class Dispatch:
    """The operation a machine runs, as dispatched (one row of ``dispatch``)."""

    equipment_id: str
    order_id: str
    operation_id: str | None
    lot_id: str | None
    batch_id: str | None
    operator_id: str | None
    status: str  # running | paused
    since: datetime
    updated_by: str

    def as_dict(self) -> dict[str, Any]:
        return {"equipment_id": self.equipment_id, "order_id": self.order_id,
                "operation_id": self.operation_id, "lot_id": self.lot_id,
                "batch_id": self.batch_id, "operator_id": self.operator_id,
                "status": self.status, "since": self.since.isoformat(),
                "updated_by": self.updated_by}


def ensure_schema(target: Engine | Connection | Store) -> None:
    if isinstance(target, Store):
        target = target.engine
    if isinstance(target, Engine):
        with target.begin() as conn:
            ensure_schema(conn)
        return
    DISPATCH.create(target, checkfirst=True)  # the migrations make it; kept for old stores


def _row(r: Any) -> Dispatch:
    return Dispatch(r.equipment_id, r.order_id, r.operation_id, r.lot_id, r.batch_id,
                    r.operator_id, r.status, _TS.process_result_value(r.since, None),  # type: ignore[arg-type]
                    r.updated_by)


def current_dispatch(target: Store | Engine | Connection) -> dict[str, Dispatch]:
    """Equipment -> its dispatched operation (blocking I/O; the contextualizer's source)."""
    if isinstance(target, Store):
        target = target.engine
    if isinstance(target, Engine):
        with target.begin() as conn:
            return current_dispatch(conn)
    ensure_schema(target)
    rows = target.execute(text(
        "SELECT equipment_id, order_id, operation_id, lot_id, batch_id, operator_id, status,"
        " since, updated_by FROM dispatch")).fetchall()
    return {r.equipment_id: _row(r) for r in rows}


def _lot_id_for(conn: Connection, order_id: str) -> str:
    """A new lot number in the plant's style: L-<order number:03d><k:02d>."""
    digits = re.findall(r"\d+", order_id)
    prefix = f"L-{int(digits[-1]):03d}" if digits else f"L-{order_id}-"
    taken = {r[0] for r in conn.execute(select(LOT.c.id).where(LOT.c.id.like(f"{prefix}%")))}
    k = 1
    while f"{prefix}{k:02d}" in taken:
        k += 1
    return f"{prefix}{k:02d}"


class Dispatcher:
    """Start, pause, resume and complete operations on machines; see the module docstring."""

    def __init__(self, store: Store, auth: Authenticator, clock: Clock) -> None:
        self.store, self.auth, self.clock = store, auth, clock
        ensure_schema(store)

    # ------------------------------------------------------------ who

    def _who(self, user_id: str, act: str, subject: dict[str, Any],
             pin: str | None) -> dict[str, Any] | None:
        """Role check, and the e-signature when the config asks for one (or a PIN came)."""
        who = self.auth.identity(user_id)
        allowed = FLOOR_ROLES["dispatch"]
        if not any(r in allowed for r in who.roles):
            raise AuthError(f"{who.name} ({', '.join(who.roles)}) may not dispatch; allowed: "
                            f"{', '.join(sorted(allowed))}")
        if getattr(self.auth.settings, "sign_dispatch", False) and not pin:
            raise AuthError(f"dispatch needs {who.name}'s PIN (e-signature) on this site")
        if not pin:
            return None
        meaning = f"dispatch {act} {subject.get('operation_id') or subject.get('order_id')} " \
                  f"on {subject['equipment_id']}: I confirm this at the machine"
        return self.auth.sign(user_id, pin, meaning, record_hash(subject)).as_dict()

    # ------------------------------------------------------------ acts

    def start(self, user_id: str, equipment_id: str, order_id: str, *,
              lot_id: str | None = None, batch_id: str | None = None,
              operator_id: str | None = None, pin: str | None = None) -> Dispatch:
        """The order's operation starts on the machine, with its lot (found or made)."""
        now = self.clock.now()
        self.auth.identity(user_id)  # an unknown user is told so first
        operator = operator_id or user_id
        if operator not in self.auth.users:
            raise DispatchError(f"unknown operator {operator!r}")
        with self.store.engine.connect() as conn:
            op_id = self._check_start(conn, equipment_id, order_id, lot_id)
        subject = {"equipment_id": equipment_id, "order_id": order_id, "operation_id": op_id,
                   "lot_id": lot_id, "batch_id": batch_id, "operator_id": operator,
                   "at": now.isoformat()}
        sig = self._who(user_id, "start", subject, pin)
        with self.store.begin() as conn:
            ensure_schema(conn)
            op_id = self._check_start(conn, equipment_id, order_id, lot_id)
            lot = self._lot(conn, equipment_id, order_id, lot_id, now)
            conn.execute(update(OP).where(OP.c.id == op_id).values(
                status="running", equipment_id=equipment_id))
            conn.execute(update(OP).where(OP.c.id == op_id, OP.c.actual_start.is_(None))
                         .values(actual_start=now))
            conn.execute(update(ORDER).where(ORDER.c.id == order_id,
                                             ORDER.c.status.in_(("planned", "released")))
                         .values(status="in_progress"))
            conn.execute(text(
                "INSERT INTO dispatch (equipment_id, order_id, operation_id, lot_id, batch_id,"
                " operator_id, status, since, updated_by) VALUES (:eq, :o, :op, :lot, :b, :opr,"
                " 'running', :since, :by)"),
                {"eq": equipment_id, "o": order_id, "op": op_id, "lot": lot, "b": batch_id,
                 "opr": operator, "since": _TS.process_bind_param(now, None), "by": user_id})
            audit.append(conn, user_id, "dispatch.start", "operation", op_id,
                         {**subject, "lot_id": lot, "signature": sig}, ts=now)
        return current_dispatch(self.store)[equipment_id]

    def pause(self, user_id: str, equipment_id: str, *, reason: str = "",
              pin: str | None = None) -> Dispatch:
        return self._status(user_id, equipment_id, "pause", "running", "paused", reason, pin)

    def resume(self, user_id: str, equipment_id: str, *, pin: str | None = None) -> Dispatch:
        return self._status(user_id, equipment_id, "resume", "paused", "running", "", pin)

    def complete(self, user_id: str, equipment_id: str, *, pin: str | None = None) -> Dispatch:
        """The operation is done on the machine: its context ends, the lot leaves it."""
        now = self.clock.now()
        d = self._current(equipment_id)
        subject = {**d.as_dict(), "act": "complete", "at": now.isoformat()}
        sig = self._who(user_id, "complete", subject, pin)
        with self.store.begin() as conn:
            conn.execute(text("DELETE FROM dispatch WHERE equipment_id = :eq"),
                         {"eq": equipment_id})
            if d.operation_id:
                conn.execute(update(OP).where(OP.c.id == d.operation_id).values(
                    status="complete", actual_end=now))
            left = conn.execute(select(OP.c.id).where(
                OP.c.order_id == d.order_id, OP.c.status != "complete")).first()
            if left is None:
                conn.execute(update(ORDER).where(ORDER.c.id == d.order_id)
                             .values(status="complete"))
            audit.append(conn, user_id, "dispatch.complete", "operation",
                         d.operation_id or d.order_id, {**subject, "signature": sig,
                                                        "order_complete": left is None}, ts=now)
        return d

    def _status(self, user_id: str, equipment_id: str, act: str, want: str, new: str,
                reason: str, pin: str | None) -> Dispatch:
        now = self.clock.now()
        d = self._current(equipment_id)
        if d.status != want:
            raise DispatchError(f"{d.operation_id or d.order_id} on {equipment_id} is "
                                f"{d.status}; {act} needs it {want}")
        subject = {**d.as_dict(), "act": act, "reason": reason, "at": now.isoformat()}
        sig = self._who(user_id, act, subject, pin)
        with self.store.begin() as conn:
            conn.execute(text("UPDATE dispatch SET status = :s, since = :t, updated_by = :by "
                              "WHERE equipment_id = :eq"),
                         {"s": new, "t": _TS.process_bind_param(now, None), "by": user_id,
                          "eq": equipment_id})
            if d.operation_id:
                conn.execute(update(OP).where(OP.c.id == d.operation_id).values(status=new))
            audit.append(conn, user_id, f"dispatch.{act}", "operation",
                         d.operation_id or d.order_id, {**subject, "signature": sig}, ts=now)
        return current_dispatch(self.store)[equipment_id]

    # ------------------------------------------------------------ checks

    def _current(self, equipment_id: str) -> Dispatch:
        d = current_dispatch(self.store).get(equipment_id)
        if d is None:
            raise DispatchError(f"nothing is dispatched on {equipment_id}; start an order "
                                "first (loopline dispatch start)")
        return d

    def _check_start(self, conn: Connection, eq: str, order_id: str,
                     lot_id: str | None) -> str:
        """The operation of the order on the machine; refusals as DispatchError."""
        if conn.execute(select(EQUIP.c.id).where(EQUIP.c.id == eq)).first() is None:
            raise DispatchError(f"unknown equipment {eq!r}")
        order = conn.execute(select(ORDER.c.status).where(ORDER.c.id == order_id)).first()
        if order is None:
            raise DispatchError(f"unknown order {order_id!r}")
        if order.status not in ORDER_OPEN:
            raise DispatchError(f"order {order_id} is {order.status}; only an open order "
                                "can start")
        ensure_schema(conn)
        busy = conn.execute(text("SELECT order_id, operation_id FROM dispatch "
                                 "WHERE equipment_id = :eq"), {"eq": eq}).first()
        if busy is not None:
            raise DispatchError(f"{eq} runs {busy.operation_id or busy.order_id}; complete "
                                "(or pause) it first")
        steps = {r.id: [e for e in r.equipment.split(",") if e]
                 for r in conn.execute(select(STEP.c.id, STEP.c.equipment)).all()}
        ops = conn.execute(select(OP.c.id, OP.c.routing_step_id, OP.c.equipment_id,
                                  OP.c.status).where(OP.c.order_id == order_id)
                           .order_by(OP.c.step)).all()
        mine = [o for o in ops if (o.equipment_id == eq if o.equipment_id
                                   else eq in steps.get(o.routing_step_id, []))]
        if not mine:
            raise DispatchError(f"order {order_id} has no operation on {eq}")
        todo = [o for o in mine if o.status != "complete"]
        if not todo:
            raise DispatchError(f"order {order_id}'s operation on {eq} is already complete")
        if lot_id is not None:
            lot = conn.execute(select(LOT.c.order_id, LOT.c.status).where(
                LOT.c.id == lot_id)).first()
            if lot is not None and lot.order_id != order_id:
                raise DispatchError(f"lot {lot_id} belongs to order {lot.order_id}, "
                                    f"not {order_id}")
            if lot is not None and lot.status not in LOT_MOVABLE:
                raise DispatchError(f"lot {lot_id} is {lot.status}; it cannot run")
        return str(todo[0].id)

    def _lot(self, conn: Connection, eq: str, order_id: str, lot_id: str | None,
             now: datetime) -> str:
        """The lot named, else the order's open lot, else a new one; WIP at the machine."""
        if lot_id is None:
            r = conn.execute(select(LOT.c.id).where(
                LOT.c.order_id == order_id, LOT.c.status.in_(LOT_MOVABLE),
                (LOT.c.equipment_id == eq) | LOT.c.equipment_id.is_(None))
                .order_by(LOT.c.id)).first()
            lot_id = r.id if r is not None else _lot_id_for(conn, order_id)
        exists = conn.execute(select(LOT.c.id).where(LOT.c.id == lot_id)).first()
        if exists is None:
            o = conn.execute(select(ORDER.c.product_id, ORDER.c.quantity).where(
                ORDER.c.id == order_id)).one()
            size = conn.execute(select(PRODUCT.c.lot_size).where(
                PRODUCT.c.id == o.product_id)).scalar()
            conn.execute(LOT.insert().values(
                id=lot_id, order_id=order_id, product_id=o.product_id,
                quantity=int(size or o.quantity), status="wip", equipment_id=eq,
                created_at=now, updated_at=now))
        else:
            conn.execute(update(LOT).where(LOT.c.id == lot_id).values(
                status="wip", equipment_id=eq, updated_at=now))
        return lot_id


@dataclass(frozen=True)
class DispatchOption:
    """One act a person can take from a console row (a machine's, or an order's)."""

    act: Act
    equipment_id: str
    order_id: str
    operation_id: str | None
    label: str


def dispatch_options(store: Store, *, equipment_id: str | None = None,
                     order_id: str | None = None, limit: int = 12) -> list[DispatchOption]:
    """What can be dispatched from a machine's row (its running operation's acts, else the
    open orders with an operation on it, by due date) or from an order's row (per
    machine of its open operations); blocking reads, small."""
    running = current_dispatch(store)
    out: list[DispatchOption] = []

    def acts_on(d: Dispatch) -> None:
        what = d.operation_id or d.order_id
        if d.status == "running":
            out.append(DispatchOption("pause", d.equipment_id, d.order_id, d.operation_id,
                                      f"pause {what} on {d.equipment_id}"))
        else:
            out.append(DispatchOption("resume", d.equipment_id, d.order_id, d.operation_id,
                                      f"resume {what} on {d.equipment_id}"))
        out.append(DispatchOption("complete", d.equipment_id, d.order_id, d.operation_id,
                                  f"complete {what} on {d.equipment_id} (lot {d.lot_id})"))

    with store.engine.connect() as conn:
        steps = {r.id: [e for e in r.equipment.split(",") if e]
                 for r in conn.execute(select(STEP.c.id, STEP.c.equipment)).all()}
        q = (select(OP.c.id, OP.c.order_id, OP.c.routing_step_id, OP.c.equipment_id,
                    ORDER.c.due_at)
             .join(ORDER, ORDER.c.id == OP.c.order_id)
             .where(OP.c.status != "complete", ORDER.c.status.in_(ORDER_OPEN))
             .order_by(ORDER.c.due_at, OP.c.step))
        if order_id is not None:
            q = q.where(OP.c.order_id == order_id)
        ops = conn.execute(q).all()
    if equipment_id is not None:
        d = running.get(equipment_id)
        if d is not None:
            acts_on(d)
            return out
        for o in ops:
            eqs = [o.equipment_id] if o.equipment_id else steps.get(o.routing_step_id, [])
            if equipment_id in eqs and len(out) < limit:
                out.append(DispatchOption("start", equipment_id, o.order_id, o.id,
                                          f"start {o.id} ({o.order_id}) on {equipment_id}"))
        return out
    seen: set[str] = set()
    for o in ops:
        eqs = [o.equipment_id] if o.equipment_id else steps.get(o.routing_step_id, [])
        for eq in eqs:
            d = running.get(eq)
            if d is not None and d.order_id == o.order_id and eq not in seen:
                seen.add(eq)
                acts_on(d)
            elif d is None:
                out.append(DispatchOption("start", eq, o.order_id, o.id,
                                          f"start {o.id} on {eq}"))
    return out[:limit]
