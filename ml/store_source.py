"""The plant's store as an ML data source: history, events and quality results.

Samples come from core.history (hot SQLite + Parquet archive) already in the contract;
state intervals, completed work orders and quality measurements come from their
tables. Open intervals (the current state) end at the requested ``end``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from sqlmodel import select

from core import history as core_history
from core.store.db import Store
from core.store.models import (
    Action,
    EquipmentStateInterval,
    ModelVersion,
    Outcome,
    QualityMeasurement,
    WorkOrder,
)
from ml import contract
from ml.contract import Events
from ml.registry import Registry

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class StoreSource:
    def __init__(self, store: Store, archive_dir: str | Path | None, tag_ids: Sequence[str],
                 characteristic: str | None = None) -> None:
        self.store, self.archive_dir = store, archive_dir
        self.tag_ids = list(tag_ids)
        self.characteristic = characteristic  # the key quality characteristic; None: most used

    def history(self, start: datetime | None, end: datetime) -> pl.DataFrame:
        # core.history is [start, end); the ML contract wants samples up to and including end.
        end_incl = end + timedelta(microseconds=1)
        f = core_history.history(self.store, self.archive_dir, self.tag_ids, start or EPOCH,
                                 end_incl)
        if start is not None:
            f = f.filter(pl.col("ts") > start)
        return contract.history(f)

    def events(self, start: datetime | None, end: datetime) -> Events:
        with self.store.session() as s:
            q = select(EquipmentStateInterval).where(EquipmentStateInterval.start <= end)
            if start is not None:
                q = q.where((EquipmentStateInterval.end.is_(None))  # type: ignore[union-attr]
                            | (EquipmentStateInterval.end >= start))  # type: ignore[operator]
            states = [(r.equipment_id, r.state, r.reason_code, r.start, r.end or end)
                      for r in s.exec(q)]
            w = select(WorkOrder).where(WorkOrder.status == "done",
                                        WorkOrder.completed_at.is_not(None),  # type: ignore[union-attr]
                                        WorkOrder.completed_at <= end)  # type: ignore[operator]
            maint = [(r.equipment_id, r.fault_mode or r.kind, r.completed_at) for r in s.exec(w)]
            # Outcomes labelled effective: the work order of that recommendation found the
            # fault, so a failure was prevented at its completion.
            p = (select(WorkOrder)
                 .join(Action, Action.recommendation_id == WorkOrder.recommendation_id)  # type: ignore[arg-type]
                 .join(Outcome, Outcome.action_id == Action.id)  # type: ignore[arg-type]
                 .where(Outcome.label == "effective", WorkOrder.completed_at.is_not(None),  # type: ignore[union-attr]
                        WorkOrder.completed_at <= end))  # type: ignore[operator]
            prevented = {(r.equipment_id, r.fault_mode or r.kind, r.completed_at)
                         for r in s.exec(p)}
        return events_from_rows(states, maint, prevented)

    def quality(self, start: datetime | None, end: datetime) -> pl.DataFrame | None:
        with self.store.session() as s:
            q = select(QualityMeasurement).where(QualityMeasurement.ts <= end,
                                                 QualityMeasurement.lot_id.is_not(None))  # type: ignore[union-attr]
            if start is not None:
                q = q.where(QualityMeasurement.ts > start)
            rows = [(r.lot_id, r.characteristic_id, r.ts, not r.in_spec, r.value)
                    for r in s.exec(q)]
        return lot_quality(rows, self.characteristic)


MEASUREMENT_SCHEMA: dict[str, pl.DataType] = {
    "lot_id": pl.String(), "characteristic": pl.String(), "ts": contract.TS,
    "scrap": pl.Boolean(), "value": pl.Float64()}


def lot_quality(rows: list[tuple[Any, ...]], characteristic: str | None = None
                ) -> pl.DataFrame | None:
    """Quality measurements (lot, characteristic, ts, out of spec, value) -> one row per lot.

    Shared with the twin-data generator (bench/ml_twin.py) so twin frames are built by
    the same rule as the store's: scrap if any characteristic is out of spec; the value
    is the key characteristic's (``characteristic``, else the most measured one).
    """
    if not rows:
        return None
    f = pl.DataFrame(rows, schema=MEASUREMENT_SCHEMA, orient="row")
    key = characteristic or f["characteristic"].mode().sort().first()
    scrap = f.group_by("lot_id").agg(pl.col("scrap").any())
    val = f.filter(pl.col("characteristic") == key).group_by("lot_id").agg(
        pl.col("ts").max(), pl.col("value").mean())
    return scrap.join(val, on="lot_id", how="left").select("lot_id", "ts", "scrap", "value")


def events_from_rows(states: list[tuple[Any, ...]], maintenance: list[tuple[Any, ...]],
                     prevented: Iterable[tuple[Any, ...]] = ()) -> Events:
    """Row tuples -> the contract's Events: (equipment, state, reason, start, end),
    (equipment, fault, completed) and prevented failures (equipment, fault, ts).

    Shared with the twin-data generator so its events are the frames the store gives."""
    return Events(_frame(states, contract.STATES_SCHEMA),
                  _frame(maintenance, contract.MAINTENANCE_SCHEMA),
                  _frame(sorted(prevented, key=lambda r: r[2]),
                         contract.MAINTENANCE_SCHEMA)).conformed()


def _frame(rows: list[tuple[Any, ...]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema, orient="row")


def mirror_versions(store: Store, registry: Registry) -> int:
    """Copy the registry's manifest into the store's ModelVersion table (upsert by name,
    version) so the console and reports see models without reading the models dir."""
    import json

    def ts(v: str | None) -> datetime | None:
        return datetime.fromisoformat(v) if v else None

    n = 0
    with store.session() as s:
        existing = {(r.name, r.version): r for r in s.exec(select(ModelVersion))}
        for v in registry.versions():
            row = existing.get((v["name"], v["version"])) or ModelVersion(
                name=v["name"], version=v["version"], created_at=ts(v["created"]))
            tw = v.get("train_window") or [None, None]
            row.status = v["status"]
            row.train_start, row.train_end = ts(tw[0]), ts(tw[1])
            row.features = json.dumps(v["features"])
            row.metrics = json.dumps(v.get("holdout_metrics") or v["metrics"], default=str)
            row.path = str(registry.root / v["path"])
            row.promoted_at = ts(v.get("promoted"))
            s.add(row)
            n += 1
        s.commit()
    return n
