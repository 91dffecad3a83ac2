"""Material adapter: a replenishment moves stock from a source location to the line side.

There is no transfer table: the move and a marker row (``Meta['outbox:<key>']``) commit
in one transaction, so a repeat finds the marker and does not move the stock twice. A
line-side move asks the plant first and moves the stock only once the plant took the
request: a failed action never leaves moved stock behind (store and action agree).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, select, update

from core import audit
from core.clock import Clock
from core.engine.executors.base import ActionFailed, ActionView, resolve
from core.engine.executors.plant import PlantCommands
from core.store.db import Store, guard
from core.store.models import Meta, Stock

STOCK = Stock.__table__  # type: ignore[attr-defined]
META = Meta.__table__  # type: ignore[attr-defined]


class MaterialAdapter:
    kinds = ("replenish",)

    def __init__(self, store: Store, clock: Clock, plant: PlantCommands | None = None) -> None:
        self.store, self.clock, self.plant = store, clock, plant

    def execute(self, a: ActionView) -> dict[str, Any]:
        """Check, tell the plant, then move: the stock moves only once the plant has taken
        the request, so a refused or unreachable plant leaves the store as it was."""
        p = a.params
        marker = f"outbox:{a.idempotency_key}"
        with guard(self.store), self.store.begin() as conn:
            seen = conn.execute(select(META.c.value).where(META.c.key == marker)).first()
            if seen is not None:  # moved, and the plant was told before the move
                return {**json.loads(seen.value), "already_done": True}
            src = self._source(conn, p)
        self._tell_plant(f"{p['to_location']}:{src.batch_id}", str(src.material_id),
                         src.batch_id, a)
        now = self.clock.now()
        with guard(self.store), self.store.begin() as conn:
            seen = conn.execute(select(META.c.value).where(META.c.key == marker)).first()
            if seen is not None:
                return {**json.loads(seen.value), "already_done": True}
            src = self._source(conn, p)
            qty = float(p["quantity"])
            dest_id = f"{p['to_location']}:{src.batch_id}"
            conn.execute(update(STOCK).where(STOCK.c.id == src.id).values(
                quantity=src.quantity - qty))
            dest = conn.execute(select(STOCK).where(STOCK.c.id == dest_id)).first()
            if dest is None:
                conn.execute(insert(STOCK).values(
                    id=dest_id, location_id=p["to_location"], material_id=src.material_id,
                    batch_id=src.batch_id, quantity=qty))
            else:
                conn.execute(update(STOCK).where(STOCK.c.id == dest_id).values(
                    quantity=dest.quantity + qty))
            result = {"from": src.id, "to": dest_id, "quantity": qty,
                      "material_id": src.material_id, "batch_id": src.batch_id}
            conn.execute(insert(META).values(key=marker, value=json.dumps(result)))
            audit.append(conn, "system:outbox", "stock.moved", "stock", dest_id,
                         {**result, "action_id": a.id}, ts=now)
        return {**result, "already_done": False}

    @staticmethod
    def _source(conn: Any, p: dict[str, Any]) -> Any:
        qty = float(p.get("quantity") or 0)
        if not qty > 0:
            raise ActionFailed("nothing to move (quantity 0)")
        src = conn.execute(select(STOCK).where(STOCK.c.id == p.get("from_stock"))).first()
        if src is None:
            raise ActionFailed(f"no stock {p.get('from_stock')!r}")
        if src.quantity < qty:
            raise ActionFailed(f"only {src.quantity:g} left in {src.id}, {qty:g} asked")
        return src

    def _tell_plant(self, to: str, material_id: str, batch_id: str | None,
                    a: ActionView) -> None:
        """Line-side moves only: the plant brings the material to the line (repeat-safe,
        keyed by the action's idempotency key)."""
        loc = to.split(":", 1)[0]
        if self.plant is not None and loc.endswith("-LS"):
            resolve(self.plant.replenish(loc.removesuffix("-LS"), material_id, batch_id,
                                         a.idempotency_key))
