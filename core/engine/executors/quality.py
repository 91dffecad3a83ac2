"""Quality adapter: hold lots under a non-conformance record; release them with a disposition."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from core import audit
from core.clock import Clock
from core.engine.executors.base import ActionFailed, ActionView, key_id, resolve
from core.engine.executors.plant import PlantCommands
from core.store.db import Store, guard
from core.store.models import Hold, HoldLot, Lot, MaterialBatch

HOLD = Hold.__table__  # type: ignore[attr-defined]
HOLD_LOT = HoldLot.__table__  # type: ignore[attr-defined]
LOT = Lot.__table__  # type: ignore[attr-defined]
BATCH = MaterialBatch.__table__  # type: ignore[attr-defined]

DISPOSITIONS = ("use_as_is", "rework", "scrap", "return_to_supplier")
LOT_AFTER = {"use_as_is": "released", "rework": "wip", "scrap": "scrapped",
             "return_to_supplier": "scrapped"}


class QualityAdapter:
    kinds = ("hold_lots", "release_lots")

    def __init__(self, store: Store, clock: Clock, plant: PlantCommands) -> None:
        self.store, self.clock, self.plant = store, clock, plant

    def execute(self, action: ActionView) -> dict[str, Any]:
        if action.kind == "hold_lots":
            return self._hold(action)
        return self._release(action)

    def _hold(self, a: ActionView) -> dict[str, Any]:
        lots = [str(x) for x in a.params.get("lots", [])]
        if not lots:
            raise ActionFailed("no lots to hold")
        hold_id = key_id("NCR-", a.idempotency_key)
        now = self.clock.now()
        with guard(self.store), self.store.begin() as conn:
            where = {r.id: r.equipment_id for r in conn.execute(
                select(LOT.c.id, LOT.c.equipment_id).where(LOT.c.id.in_(lots)))}
            existing = conn.execute(select(HOLD.c.id).where(HOLD.c.id == hold_id)).first()
            if existing is None:
                known = {r.id: r.status for r in conn.execute(
                    select(LOT.c.id, LOT.c.status).where(LOT.c.id.in_(lots)))}
                missing = [x for x in lots if x not in known]
                if missing:
                    raise ActionFailed(f"unknown lot(s): {', '.join(missing)}")
                conn.execute(insert(HOLD).values(
                    id=hold_id, reason=str(a.params.get("reason", ""))[:500], status="open",
                    created_by=str(a.params.get("approved_by", "engine")), created_at=now,
                    recommendation_id=a.recommendation_id))
                for lot in lots:
                    conn.execute(insert(HOLD_LOT).values(hold_id=hold_id, lot_id=lot))
                conn.execute(update(LOT).where(LOT.c.id.in_(lots)).values(
                    status="held", updated_at=now))
                audit.append(conn, "system:outbox", "hold.created", "hold", hold_id,
                             {"lots": lots, "previous": known, "action_id": a.id}, ts=now)
        # one command per lot, each with its own key: the plant drops a repeated key as a
        # retry, so one key for all lots held only the first (and released only one)
        refused = self._tell_plant(lots, lambda lot: self.plant.hold_lot(
            lot, where.get(lot), f"{a.idempotency_key}:{lot}"))  # a held lot: a no-op there
        return {"hold_id": hold_id, "lots": lots, "already_done": existing is not None,
                **({"plant_refused": refused} if refused else {})}

    @staticmethod
    def _tell_plant(lots: list[str], send: Any) -> dict[str, str]:
        """The hold lives in the store (the MES); the plant command stops the lot where it
        is. A machine refusing it (the lot just left it, or finished its route) does not
        undo the hold: the refusal is reported with the result. An unreachable plant is
        a transient error, retried."""
        refused: dict[str, str] = {}
        for lot in lots:
            try:
                resolve(send(lot))
            except ActionFailed as e:
                refused[lot] = str(e)
        return refused

    def _release(self, a: ActionView) -> dict[str, Any]:
        hold_id = str(a.params.get("hold_id") or "")
        disposition = str(a.params.get("disposition") or "")
        if disposition not in DISPOSITIONS:
            raise ActionFailed(f"disposition must be one of {', '.join(DISPOSITIONS)}")
        now = self.clock.now()
        with guard(self.store), self.store.begin() as conn:
            hold = conn.execute(select(HOLD).where(HOLD.c.id == hold_id)).first()
            if hold is None:
                raise ActionFailed(f"no hold {hold_id!r}")
            lots = [r.lot_id for r in conn.execute(
                select(HOLD_LOT.c.lot_id).where(HOLD_LOT.c.hold_id == hold_id))]
            where = {r.id: r.equipment_id for r in conn.execute(
                select(LOT.c.id, LOT.c.equipment_id).where(LOT.c.id.in_(lots)))}
            done = hold.status == "closed"
            if not done:
                conn.execute(update(HOLD).where(HOLD.c.id == hold_id).values(
                    status="closed", disposition=disposition, closed_at=now))
                still = {r.lot_id for r in conn.execute(
                    select(HOLD_LOT.c.lot_id).join(HOLD, HOLD.c.id == HOLD_LOT.c.hold_id)
                    .where(HOLD_LOT.c.lot_id.in_(lots), HOLD.c.status == "open"))}
                free = [x for x in lots if x not in still]  # another open hold keeps a lot
                conn.execute(update(LOT).where(LOT.c.id.in_(free), LOT.c.status == "held")
                             .values(status=LOT_AFTER[disposition], updated_at=now))
                batch = a.params.get("batch_id")
                if disposition == "return_to_supplier" and batch:
                    conn.execute(update(BATCH).where(BATCH.c.id == batch).values(
                        status="blocked"))
                audit.append(conn, "system:outbox", "hold.closed", "hold", hold_id,
                             {"disposition": disposition, "lots": lots, "action_id": a.id},
                             ts=now)
        refused = self._tell_plant(lots, lambda lot: self.plant.release_lot(
            lot, where.get(lot), disposition, f"{a.idempotency_key}:{lot}"))
        return {"hold_id": hold_id, "disposition": disposition, "lots": lots,
                "already_done": done, **({"plant_refused": refused} if refused else {})}
