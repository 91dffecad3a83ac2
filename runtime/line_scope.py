"""What one runtime is responsible for when several share a store (``--lines A,B``).

The config maps every tag to its equipment and line, and every tag to its driver. A
runtime started for some lines reads only those lines' tags (so it starts only the
drivers that serve them), detects and recommends only for them, and executes only the
outbox actions whose line is one of them — and only while it holds their leases
(``core.store.leases``). Plant-level tags (the twin's clock) are read by every runtime
whose drivers serve them, for its plant time, and stored by the *home* runtime only:
the one that owns the config's first line. Actions that belong to no line (a model
retrain, a plan without a line) are the home runtime's too.

An action's line comes from what it acts on, in this order: ``line_id``,
``equipment_id``, ``tag_id``, a line-side ``to_location`` in its parameters; its work
order's, lot's or hold's machine; its lots' orders; the recommendation's target. Every
runtime sharing the store uses the same config, so all of them agree on each action's line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from core.config import LoadedConfig
from core.store import leases
from core.store.models import HoldLot, Lot, ProductionOrder, Recommendation, WorkOrder


class LineScopeError(ValueError):
    """--lines names a line the config does not have."""


class LineScope:
    """The lines this runtime owns and the config views it runs on."""

    def __init__(self, loaded: LoadedConfig, lines: Sequence[str] | None = None) -> None:
        all_lines = [ln.id for ln in loaded.config.lines]
        if lines:
            unknown = [x for x in lines if x not in all_lines]
            if unknown:
                raise LineScopeError(f"--lines: no line {', '.join(unknown)} in "
                                     f"{loaded.path.name} (lines: {', '.join(all_lines)})")
        self.loaded = loaded
        self.all_lines = all_lines
        self.lines: list[str] = [x for x in all_lines if not lines or x in lines]
        self.partial = len(self.lines) < len(all_lines)
        self.home = bool(self.lines) and self.lines[0] == all_lines[0] if all_lines else True
        self.line_of_equipment = {eq.id: ln.id for ln, eq in loaded.equipment()}
        self.line_of_tag = {t.id: t.line_id for t in loaded.tags if t.line_id}
        mine = set(self.lines)
        line_tags = [t for t in loaded.tags if t.line_id in mine]
        used = {t.driver_id for t in line_tags}
        plant_tags = [t for t in loaded.tags if t.line_id is None]
        io_tags = line_tags + [t for t in plant_tags if t.driver_id in used or not self.partial]
        data_tags = line_tags + [t for t in plant_tags if self.home or not self.partial]
        #: what the drivers read; what is stored and detected on
        self.io_config = loaded if not self.partial else replace(loaded, tags=io_tags)
        self.data_config = loaded if not self.partial else replace(loaded, tags=data_tags)
        self.read_only_tags = {t.id for t in io_tags} - {t.id for t in data_tags}
        self._cache: dict[int, str | None] = {}

    def drivers_used(self) -> set[str]:
        return {t.driver_id for t in self.io_config.tags}

    # ------------------------------------------------------------ actions

    def line_of_action(self, conn: Connection, row: Any) -> str | None:
        """The line an outbox row acts on, None for a plant-wide one (cached per id)."""
        aid = int(row.id)
        if aid not in self._cache:
            self._cache[aid] = self._resolve(conn, row)
        return self._cache[aid]

    def owns_action(self, conn: Connection, row: Any, owner: str | None,
                    now: datetime | None = None) -> bool:
        """Ours to execute: its line is one of ours (a plant-wide one: we are home) and,
        with a lease owner given, we still hold that line's lease."""
        line = self.line_of_action(conn, row)
        if line is None:
            if not self.home:
                return False
            line = self.lines[0]
        if line not in self.lines:
            return False
        return owner is None or leases.held(conn, line, owner, now)

    def _resolve(self, conn: Connection, row: Any) -> str | None:
        try:
            p = json.loads(row.params or "{}")
        except (TypeError, ValueError):
            p = {}
        if not isinstance(p, dict):
            p = {}
        if p.get("line_id") in self.all_lines:
            return str(p["line_id"])
        for key in ("equipment_id", "to_equipment"):
            if p.get(key) in self.line_of_equipment:
                return self.line_of_equipment[p[key]]
        if p.get("tag_id") in self.line_of_tag:
            return self.line_of_tag[p["tag_id"]]
        side = _line_side(str(p.get("to_location") or ""))  # a replenishment: "<line>-LS"
        if side in self.all_lines:
            return side
        if p.get("work_order_id"):
            eq = conn.execute(select(WorkOrder.equipment_id).where(
                WorkOrder.id == str(p["work_order_id"]))).scalar()
            if eq in self.line_of_equipment:
                return self.line_of_equipment[eq]
        lots = [str(x) for x in (p.get("lots") or []) if x]
        if p.get("hold_id"):
            lots += [r[0] for r in conn.execute(select(HoldLot.lot_id).where(
                HoldLot.hold_id == str(p["hold_id"])))]
        for lot in lots:
            line = self._line_of_lot(conn, lot)
            if line is not None:
                return line
        rec = getattr(row, "recommendation_id", None)
        if rec:
            r = conn.execute(select(Recommendation.target, Recommendation.params).where(
                Recommendation.id == rec)).first()
            if r is not None:
                t = str(r.target)
                if t in self.all_lines:
                    return t
                if _line_side(t) in self.all_lines:
                    return _line_side(t)
                if t in self.line_of_equipment:
                    return self.line_of_equipment[t]
                if t in self.line_of_tag:
                    return self.line_of_tag[t]
                line = self._line_of_lot(conn, t)
                if line is not None:
                    return line
                if r.params and r.params != row.params:
                    return self._resolve(conn, _Row(row.id, r.params, None))
        return None

    def _line_of_lot(self, conn: Connection, lot_id: str) -> str | None:
        r = conn.execute(select(Lot.equipment_id, ProductionOrder.line_id)
                         .join(ProductionOrder, ProductionOrder.id == Lot.order_id,
                               isouter=True).where(Lot.id == lot_id)).first()
        if r is None:
            return None
        if r.equipment_id in self.line_of_equipment:
            return self.line_of_equipment[r.equipment_id]
        return r.line_id if r.line_id in self.all_lines else None


def _line_side(location: str) -> str:
    """The line of a line-side stock location ("A-LS", or "A-LS:material" as a target)."""
    loc = location.split(":", 1)[0]
    return loc.removesuffix("-LS") if loc.endswith("-LS") else ""


class _Row:
    def __init__(self, id: int, params: str, recommendation_id: str | None) -> None:
        self.id, self.params, self.recommendation_id = id, params, recommendation_id


__all__ = ["LineScope", "LineScopeError"]
