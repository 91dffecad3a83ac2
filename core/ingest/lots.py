"""Lots the plant reports: a lot number first seen on a machine becomes a Lot row.

Machines publish the lot they are working on (a context tag). A lot the store does not
know yet (the line numbered it, or it was split on the floor) is registered under the
order the machine reports, with the product and lot size of that order, so holds,
genealogy and reports can name it. Each batch a lot runs with is a ``consume`` edge of
its genealogy, which is what a quality hold follows downstream.

Nothing here overwrites a decision: a held or scrapped lot keeps its status; only where
it is (``equipment_id``) follows the machines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from core.ingest.contextualizer import ContextChange
from core.samples import Context
from core.statuses import LOT_MOVABLE
from core.store.db import Store, guard
from core.store.models import (
    Lot,
    LotGenealogy,
    MaterialBatch,
    Product,
    ProductionOrder,
    RoutingStep,
)

LOT = Lot.__table__  # type: ignore[attr-defined]
GEN = LotGenealogy.__table__  # type: ignore[attr-defined]
ORDER = ProductionOrder.__table__  # type: ignore[attr-defined]
PRODUCT = Product.__table__  # type: ignore[attr-defined]
BATCH = MaterialBatch.__table__  # type: ignore[attr-defined]
STEP = RoutingStep.__table__  # type: ignore[attr-defined]


@dataclass
class LotReport:
    created: int = 0
    moved: int = 0
    edges: int = 0
    left: int = 0  # lots that left a machine (it stays their last known place)
    completed: int = 0  # lots that left the last step of their route
    unknown_orders: int = 0  # lots reported under an order the store does not know


def register_lots(store: Store, changes: Iterable[ContextChange],
                  contexts: Mapping[str, Context], now: datetime) -> LotReport:
    """Create or move the lots named by lot/batch context changes; idempotent."""
    rep = LotReport()
    seen: dict[str, tuple[str, datetime]] = {}  # lot -> (equipment, ts), last wins
    left: dict[str, tuple[str, datetime]] = {}  # lot -> (equipment it left, ts)
    batches: set[tuple[str, str]] = set()
    for ch in changes:
        ctx = contexts.get(ch.equipment_id)
        if ch.field == "lot_id" and ch.old:
            left[ch.old] = (ch.equipment_id, ch.ts or now)
            if seen.get(ch.old, ("",))[0] == ch.equipment_id:
                del seen[ch.old]
        if ch.field == "lot_id" and ch.new:
            seen[ch.new] = (ch.equipment_id, ch.ts or now)
            left.pop(ch.new, None)
        if ch.field in ("lot_id", "batch_id") and ctx is not None and ctx.lot_id and ctx.batch_id:
            batches.add((ctx.lot_id, ctx.batch_id))
    if not seen and not batches and not left:
        return rep
    with guard(store), store.begin() as conn:
        known = {r.id: r for r in conn.execute(
            select(LOT.c.id, LOT.c.status, LOT.c.equipment_id).where(
                LOT.c.id.in_(list(seen) + [lot for lot, _ in batches]))).all()}
        for lot_id, (eq, ts) in seen.items():
            row = known.get(lot_id)
            if row is None:
                ctx = contexts.get(eq)
                order = ctx.order_id if ctx else None
                o = conn.execute(select(ORDER.c.product_id, ORDER.c.quantity).where(
                    ORDER.c.id == order)).first() if order else None
                if o is None:
                    rep.unknown_orders += 1
                    continue
                size = conn.execute(select(PRODUCT.c.lot_size).where(
                    PRODUCT.c.id == o.product_id)).scalar()
                conn.execute(insert(LOT).values(
                    id=lot_id, order_id=order, product_id=o.product_id,
                    quantity=int(size or o.quantity), status="wip", equipment_id=eq,
                    created_at=ts, updated_at=ts))
                known[lot_id] = None  # type: ignore[assignment]
                rep.created += 1
            elif row.equipment_id != eq and row.status in LOT_MOVABLE:
                conn.execute(update(LOT).where(LOT.c.id == lot_id).values(
                    equipment_id=eq, status="wip", updated_at=ts))
                rep.moved += 1
        last_steps = _last_step_equipment(conn) if left else {}
        for lot_id, (eq, ts) in left.items():
            # ``equipment_id`` stays the machine it was last on: a held lot waits in that
            # machine's queue, and a release (a Modbus "release the lot held here") must
            # go back there. Leaving a machine of its route's last step, it is complete.
            rep.left += 1
            order = conn.execute(select(LOT.c.order_id, LOT.c.status).where(
                LOT.c.id == lot_id)).first()
            if order is not None and order.status == "wip" and \
                    eq in last_steps.get(order.order_id, ()):
                conn.execute(update(LOT).where(LOT.c.id == lot_id, LOT.c.status == "wip")
                             .values(status="complete", updated_at=ts))
                rep.completed += 1
        if batches:
            have = {(r.child_lot_id, r.batch_id) for r in conn.execute(
                select(GEN.c.child_lot_id, GEN.c.batch_id).where(
                    GEN.c.child_lot_id.in_([lot for lot, _ in batches]),
                    GEN.c.relation == "consume")).all()}
            lots = set(known) | {r.id for r in conn.execute(select(LOT.c.id).where(
                LOT.c.id.in_([lot for lot, _ in batches]))).all()}
            valid = {r.id for r in conn.execute(select(BATCH.c.id).where(
                BATCH.c.id.in_([b for _, b in batches]))).all()}
            for lot_id, batch_id in sorted(batches - have):
                if lot_id in lots and batch_id in valid:
                    conn.execute(insert(GEN).values(child_lot_id=lot_id, batch_id=batch_id,
                                                    relation="consume", ts=now))
                    rep.edges += 1
    return rep


def _last_step_equipment(conn: Any) -> dict[str, tuple[str, ...]]:
    """Order id → the machines of its recipe's last routing step."""
    steps: dict[str, tuple[int, tuple[str, ...]]] = {}
    for r in conn.execute(select(STEP.c.recipe_id, STEP.c.step, STEP.c.equipment)).all():
        cur = steps.get(r.recipe_id)
        if cur is None or r.step > cur[0]:
            steps[r.recipe_id] = (r.step, tuple(e for e in r.equipment.split(",") if e))
    by_product = {r.product_id: r.recipe_id for r in conn.execute(
        select(STEP.c.product_id, STEP.c.recipe_id)).all()}
    out: dict[str, tuple[str, ...]] = {}
    for o in conn.execute(select(ORDER.c.id, ORDER.c.recipe_id, ORDER.c.product_id)).all():
        rid = o.recipe_id or by_product.get(o.product_id)
        if rid in steps:
            out[o.id] = steps[rid][1]
    return out
