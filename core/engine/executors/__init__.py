"""Outbox adapters, one module per plant function, and the default wiring."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from core.clock import Clock
from core.engine.executors.base import (
    ActionFailed,
    ActionView,
    Adapter,
    TransientError,
    key_id,
)
from core.engine.executors.command import CommandAdapter
from core.engine.executors.device import DeviceAdapter, DeviceWriter, MemoryDevice
from core.engine.executors.maintenance import MaintenanceAdapter
from core.engine.executors.material import MaterialAdapter
from core.engine.executors.models import ModelAdapter, Retrainer
from core.engine.executors.plant import PlantCommands, RecordingPlant
from core.engine.executors.quality import QualityAdapter
from core.engine.executors.scheduling import SchedulingAdapter
from core.store.db import Store

__all__ = ["ActionFailed", "ActionView", "Adapter", "DeviceWriter", "MemoryDevice",
           "PlantCommands", "RecordingPlant", "Retrainer", "TransientError", "default_adapters",
           "key_id"]


def default_adapters(store: Store, clock: Clock, plant: PlantCommands,
                     device: DeviceWriter | None = None,
                     activate_plan: Callable[[str], None] | None = None,
                     loop: asyncio.AbstractEventLoop | None = None,
                     retrain: Retrainer | None = None) -> dict[str, Adapter]:
    """Action kind -> adapter. Without a device writer, setpoint writes fail clearly;
    without a retrainer (no ML jobs here), retraining does."""
    adapters: list[Adapter] = [
        QualityAdapter(store, clock, plant), MaintenanceAdapter(store, clock, plant),
        SchedulingAdapter(store, clock, activate_plan), MaterialAdapter(store, clock, plant),
        ModelAdapter(store, clock, retrain), CommandAdapter(plant),
    ]
    if device is not None:
        adapters.append(DeviceAdapter(store, device, loop))
    return {k: a for a in adapters for k in a.kinds}
