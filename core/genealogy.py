"""Lot genealogy both ways: what a lot was made from, and what was made from it.

Upstream walks ``lot_genealogy`` from child to parents (parent lots of splits and
merges, recursively, and the material batches consumed on the way); downstream walks
from parent to children (a batch to the lots that consumed it, a lot to the lots split or
merged from it, recursively). This is the recall question a quality engineer asks: hold
a batch, and which lots must follow? Cycles in bad data are cut, never looped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from core.clock import ensure_utc
from core.store.db import Store, guard
from core.store.models import Lot, LotGenealogy, MaterialBatch

_G = LotGenealogy.__table__  # type: ignore[attr-defined]
_LOT = Lot.__table__  # type: ignore[attr-defined]
_BATCH = MaterialBatch.__table__  # type: ignore[attr-defined]


class GenealogyError(Exception):
    """The id is neither a lot nor a batch: str() says so."""


@dataclass(frozen=True)
class Link:
    """One edge as seen from the traced item; ``depth`` 1 is a direct neighbour."""

    depth: int
    parent: str
    parent_kind: str  # lot | batch
    child: str
    relation: str  # consume | split | merge
    quantity: float
    ts: str | None


@dataclass
class Trace:
    root: str
    kind: str  # lot | batch
    upstream: list[Link] = field(default_factory=list)
    downstream: list[Link] = field(default_factory=list)
    lots: dict[str, dict[str, Any]] = field(default_factory=dict)  # every lot met: status...

    @property
    def upstream_lots(self) -> list[str]:
        return _unique(x.parent for x in self.upstream if x.parent_kind == "lot")

    @property
    def upstream_batches(self) -> list[str]:
        return _unique(x.parent for x in self.upstream if x.parent_kind == "batch")

    @property
    def downstream_lots(self) -> list[str]:
        return _unique(x.child for x in self.downstream)

    def as_dict(self) -> dict[str, Any]:
        return {"root": self.root, "kind": self.kind,
                "upstream_lots": self.upstream_lots, "upstream_batches": self.upstream_batches,
                "downstream_lots": self.downstream_lots,
                "upstream": [asdict(x) for x in self.upstream],
                "downstream": [asdict(x) for x in self.downstream], "lots": self.lots}


def trace(store: Store, item_id: str) -> Trace:
    """The genealogy of a lot (both ways) or of a material batch (downstream)."""
    with guard(store), store.engine.connect() as c:
        if c.execute(select(_LOT.c.id).where(_LOT.c.id == item_id)).first():
            kind = "lot"
        elif c.execute(select(_BATCH.c.id).where(_BATCH.c.id == item_id)).first() or \
                c.execute(select(_G.c.id).where(_G.c.batch_id == item_id)).first():
            kind = "batch"
        else:
            raise GenealogyError(f"{item_id!r} is neither a lot nor a material batch")
        t = Trace(item_id, kind)
        if kind == "lot":
            t.upstream = _walk_up(c, item_id)
        t.downstream = _walk_down(c, item_id, kind)
        ids = {item_id} if kind == "lot" else set()
        ids |= set(t.upstream_lots) | set(t.downstream_lots)
        if ids:
            for r in c.execute(select(_LOT).where(_LOT.c.id.in_(sorted(ids)))):
                t.lots[r.id] = {"order_id": r.order_id, "product_id": r.product_id,
                                "quantity": r.quantity, "status": r.status}
    return t


def consumed_quantity(c: Any, lot_id: str, batch_id: str) -> float:
    """How much of a batch a lot used, from what was counted: the pieces of the lot made on
    the routing step that takes the batch's material, × that step's qty_per_unit. The
    ingest records the consume edge when the batch shows up in the lot's context; no
    signal meters the material itself, so the edge's own quantity stays 0."""
    from sqlalchemy import inspect

    from core.production import PRODUCTION_COUNT
    from core.store.models import ProductionOrder, RoutingStep

    mat = c.execute(select(_BATCH.c.material_id).where(_BATCH.c.id == batch_id)).scalar()
    lot = c.execute(select(_LOT.c.order_id, _LOT.c.product_id).where(
        _LOT.c.id == lot_id)).first()
    if mat is None or lot is None:
        return 0.0
    ot, st = ProductionOrder.__table__, RoutingStep.__table__  # type: ignore[attr-defined]
    recipe = c.execute(select(ot.c.recipe_id).where(ot.c.id == lot.order_id)).scalar()
    q = select(st.c.equipment, st.c.qty_per_unit).where(st.c.material_id == mat,
                                                       st.c.product_id == lot.product_id)
    if recipe:
        q = q.where(st.c.recipe_id == recipe)
    total = 0.0
    if not inspect(c).has_table("production_count"):
        return 0.0
    pc = PRODUCTION_COUNT
    for step in c.execute(q).all():
        eqs = [e for e in step.equipment.split(",") if e]
        pieces = c.execute(select(func.coalesce(func.sum(pc.c.good + pc.c.scrap), 0)).where(
            pc.c.lot_id == lot_id, pc.c.equipment_id.in_(eqs))).scalar() or 0
        total += float(pieces) * float(step.qty_per_unit or 0.0)
    return total


def _link(depth: int, r: Any, c: Any = None) -> Link:
    parent, pkind = (r.parent_lot_id, "lot") if r.parent_lot_id else (r.batch_id, "batch")
    qty = float(r.quantity or 0.0)
    if not qty and r.relation == "consume" and r.batch_id and c is not None:
        qty = round(consumed_quantity(c, r.child_lot_id, r.batch_id), 3)
    return Link(depth, parent, pkind, r.child_lot_id, r.relation, qty, _iso(r.ts))


def _walk_up(c: Any, lot_id: str) -> list[Link]:
    out: list[Link] = []
    seen, frontier, depth = {lot_id}, [lot_id], 0
    while frontier:
        depth += 1
        rows = c.execute(select(_G).where(_G.c.child_lot_id.in_(frontier))
                         .order_by(_G.c.ts, _G.c.id)).all()
        frontier = []
        for r in rows:
            out.append(_link(depth, r, c))
            if r.parent_lot_id and r.parent_lot_id not in seen:
                seen.add(r.parent_lot_id)
                frontier.append(r.parent_lot_id)
    return out


def _walk_down(c: Any, item_id: str, kind: str) -> list[Link]:
    out: list[Link] = []
    seen = {item_id} if kind == "lot" else set()
    first = _G.c.batch_id == item_id if kind == "batch" else _G.c.parent_lot_id == item_id
    rows = c.execute(select(_G).where(first).order_by(_G.c.ts, _G.c.id)).all()
    depth = 1
    while rows:
        frontier = []
        for r in rows:
            out.append(_link(depth, r, c))
            if r.child_lot_id not in seen:
                seen.add(r.child_lot_id)
                frontier.append(r.child_lot_id)
        depth += 1
        rows = c.execute(select(_G).where(_G.c.parent_lot_id.in_(frontier))
                         .order_by(_G.c.ts, _G.c.id)).all() if frontier else []
    return out


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _iso(ts: datetime | None) -> str | None:
    return ensure_utc(ts).isoformat() if ts is not None else None
