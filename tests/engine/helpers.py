"""Builders shared by the engine tests: detections, engines, plant context rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.clock import Clock
from core.config import LoadedConfig
from core.detect.events import Detection, context_ids
from core.engine.engine import Engine
from core.engine.executors import MemoryDevice, RecordingPlant
from core.samples import Context, Quality
from core.store.db import Store
from core.store.models import Lot, LotGenealogy

PLANT_START = datetime(2026, 1, 5, 6, 0, 0, tzinfo=UTC)  # tests/conftest.py
PINS = {"olga": "1111", "sam": "2222", "maya": "3333", "quinn": "4444", "tom": "5555",
        "ada": "9999"}


def detection(*, ctx: Context | None = None, quality: Quality = Quality.GOOD,
              **kw: Any) -> Detection:
    """A core.detect Detection; ``ctx`` becomes its plain-id context."""
    return Detection(context=context_ids(ctx), quality=quality, **kw)


def bearing(onset: datetime, *, key: str = "A-LATHE1:bearing", slope: float = 2.1,
            predicted: datetime | None = None, quality: str = "good",
            ctx: Context | None = None, priority: str = "high") -> Any:
    ev: dict[str, Any] = {
        "signals": [{"signal": "bearing_temp", "slope_per_h": slope, "window_h": 6,
                     "unit": "°C"},
                    {"signal": "vibration_rms", "value": 2.8, "baseline": 2.0,
                     "unit": "mm/s"}],
        "fault_mode": "bearing", "expected_downtime_h": 6.0,
    }
    if predicted is not None:
        ev["predicted_failure_at"] = predicted.isoformat()
    return detection(kind="limit", detector_id="bearing_temp_high", problem_key=key,
                     equipment_id="A-LATHE1", line_id="A", tag_id="A-LATHE1.bearing_temp",
                     priority=priority, onset=onset, value=81.5,
                     summary="bearing temperature above 80 °C",
                     ctx=ctx or Context(equipment_id="A-LATHE1", line_id="A"), evidence=ev,
                     quality=Quality[quality.upper()])


def spc(onset: datetime, lot: str = "L-00101", batch: str = "B-0001",
        key: str = "A-GRIND1:diameter") -> Any:
    return detection(kind="spc", detector_id="quality_spc", problem_key=key,
                     equipment_id="A-GRIND1", line_id="A", tag_id="A-GRIND1.quality_value",
                     priority="medium", onset=onset, value=20.04,
                     summary="Nelson rule 2: 9 points above the centre line",
                     ctx=Context(equipment_id="A-GRIND1", line_id="A", order_id="PO-0001",
                                 lot_id=lot, recipe_id="R-SH20", batch_id=batch),
                     evidence={"rule": "Nelson rule 2: 9 points in a row above the centre "
                                       "line", "characteristic": "P-SH20.diameter",
                               "confidence": 0.9})


def scrap_setpoint(onset: datetime, *, target: float | None = None, delta: float | None = None,
                   key: str = "B-MOLD1:scrap") -> Any:
    sp: dict[str, Any] = {"name": "temp_sp", "current": 240.0}
    if target is not None:
        sp["target"] = target
    if delta is not None:
        sp["delta"] = delta
    return detection(kind="ml_score", detector_id="scrap_risk", problem_key=key,
                     equipment_id="B-MOLD1", line_id="B", tag_id=None, priority="medium",
                     onset=onset, value=0.7, summary="predicted scrap risk 0.70",
                     ctx=Context(equipment_id="B-MOLD1", line_id="B", recipe_id="R-HL"),
                     evidence={"model": "scrap_risk", "score": 0.7, "threshold": 0.5,
                               "setpoint": sp,
                               "contributions": [
                                   {"signal": "zone_temp", "feature": "dbase_1h", "value": 6.5,
                                    "baseline": 0.0, "unit": "°C", "contribution": 0.8,
                                    "direction": "raises", "window": "1h"}]})


def make_engine(store: Store, loaded: LoadedConfig, clock: Clock, **kw: Any) -> Engine:
    kw.setdefault("plant", RecordingPlant())
    kw.setdefault("use_scheduler", False)
    return Engine(store, loaded.config, clock, **kw)


def add_genealogy(store: Store, at: datetime) -> None:
    """B-0001 went into L-00101 and L-00102; L-00104 was split from L-00102; L-00201 used B-0004."""
    with store.session() as s:
        s.add(LotGenealogy(child_lot_id="L-00101", batch_id="B-0001", relation="consume",
                           quantity=100, ts=at))
        s.add(LotGenealogy(child_lot_id="L-00102", batch_id="B-0001", relation="consume",
                           quantity=100, ts=at))
        s.add(LotGenealogy(child_lot_id="L-00104", parent_lot_id="L-00102", relation="split",
                           quantity=50, ts=at))
        s.add(LotGenealogy(child_lot_id="L-00201", batch_id="B-0004", relation="consume",
                           quantity=100, ts=at))
        for lot_id in ("L-00101", "L-00102", "L-00104"):
            lot = s.get(Lot, lot_id)
            assert lot is not None
            lot.status = "wip"
            s.add(lot)
        s.commit()


def device_for(store: Store) -> MemoryDevice:
    return MemoryDevice({"B-MOLD1.temp_sp": 240.0, "A-LATHE1.speed_sp": 1800.0})


class FileDevice:
    """A device whose state survives the process: values in a JSON file, writes in a log.

    ``block_after_write`` makes the read-back after a write hang (a process killed there
    has written but not recorded 'done') — what the SIGKILL test needs.
    """

    def __init__(self, folder: Any, block_after_write: bool = False,
                 on_block: Any = None) -> None:
        from pathlib import Path
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.values_file = self.dir / "values.json"
        self.log_file = self.dir / "writes.log"
        if not self.values_file.exists():
            self._save({"B-MOLD1.temp_sp": 240.0, "A-LATHE1.speed_sp": 1800.0})
        self.block_after_write = block_after_write
        self.on_block = on_block
        self._wrote = False

    def _load(self) -> dict[str, float]:
        import json
        return json.loads(self.values_file.read_text())

    def _save(self, values: dict[str, float]) -> None:
        import json
        import os
        tmp = self.values_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(values))
        os.replace(tmp, self.values_file)

    def write(self, tag_id: str, value: float) -> None:
        with self.log_file.open("a") as f:
            f.write(f"{tag_id}={value}\n")
            f.flush()
        values = self._load()
        values[tag_id] = value
        self._save(values)
        self._wrote = True

    def read(self, tag_id: str) -> float | None:
        if self._wrote and self.block_after_write:
            import time
            if self.on_block:
                self.on_block()
            time.sleep(600)
        return self._load().get(tag_id)

    def writes(self) -> list[str]:
        return self.log_file.read_text().splitlines() if self.log_file.exists() else []
