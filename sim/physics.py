"""Per-type constants of the twin's physics: sensor baselines, which degradations an
equipment type suffers, how setpoints move the quality characteristic.

Numbers are plausible rather than calibrated: vibration in mm/s RMS (ISO 10816 zone
boundaries 2.8/7.1/11), temperatures in °C, currents in A.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STATE_IDLE, STATE_RUNNING, STATE_SETUP, STATE_DOWN_PLANNED = 0, 1, 2, 3
STATE_DOWN_UNPLANNED, STATE_STARVED, STATE_BLOCKED = 4, 5, 6
STATE_NAMES = {
    0: "idle", 1: "running", 2: "setup", 3: "down_planned", 4: "down_unplanned",
    5: "starved", 6: "blocked",
}

DEGRADATIONS = ("bearing", "tool", "heater", "clog")
SENSOR_FAULTS = ("sensor-stuck", "sensor-noise", "comms-drop")
FAULT_KINDS = DEGRADATIONS + SENSOR_FAULTS

# Modbus command register codes (documented in sim/README.md and config.toml).
MODBUS_COMMANDS = {1: "bearing", 2: "tool", 3: "heater", 4: "clog", 10: "hold_lot",
                   11: "release_lot"}


@dataclass(frozen=True)
class TypeSpec:
    vibration: float  # mm/s RMS running at nominal speed
    bearing_temp: float  # °C rise above ambient at full load
    current: float  # A at nominal load
    degradations: tuple[str, ...]
    zone_temp: float | None = None  # default zone temperature when no temp_sp
    pressure: float | None = None  # bar at nominal
    flow: float | None = None
    quality_sigma: float = 1 / 3.2  # in half-tolerances
    sp_effect: dict[str, float] = field(default_factory=dict)  # mean shift at the limit
    default_setpoints: dict[str, tuple[float, float, float]] = field(default_factory=dict)


SPECS: dict[str, TypeSpec] = {
    "lathe": TypeSpec(2.2, 22, 28, ("bearing", "tool"),
                      sp_effect={"speed_sp": -0.3, "feed_sp": 0.6}),
    "mill": TypeSpec(2.6, 24, 32, ("bearing", "tool"),
                     sp_effect={"speed_sp": -0.2, "feed_sp": 0.5}),
    "grinder": TypeSpec(1.8, 20, 24, ("bearing", "tool"),
                        sp_effect={"speed_sp": -0.4, "feed_sp": 0.5}),
    "washer": TypeSpec(1.4, 12, 12, ("bearing", "heater", "clog"), zone_temp=60, pressure=5.0,
                       flow=45.0, quality_sigma=1 / 6.0, sp_effect={"temp_sp": 0.05}),
    "dryer": TypeSpec(1.2, 10, 9, ("bearing", "heater"), zone_temp=80, quality_sigma=1 / 6.0,
                      sp_effect={"temp_sp": -0.2}),
    "molder": TypeSpec(2.0, 18, 35, ("bearing", "heater", "clog"), zone_temp=230,
                       pressure=1200.0, flow=60.0,
                       sp_effect={"temp_sp": -0.5, "pressure_sp": 0.7}),
    "extruder": TypeSpec(2.4, 20, 40, ("bearing", "heater", "clog"), zone_temp=190,
                         pressure=180.0, sp_effect={"temp_sp": -0.4, "speed_sp": 0.5}),
    "oven": TypeSpec(1.0, 8, 15, ("bearing", "heater"), zone_temp=160,
                     pressure=1.02, quality_sigma=1 / 5.0, sp_effect={"temp_sp": 0.3},
                     default_setpoints={"speed_sp": (30.0, 20.0, 40.0)}),
    "press": TypeSpec(3.0, 22, 30, ("bearing", "tool"), sp_effect={"speed_sp": 0.3}),
    "packer": TypeSpec(1.5, 12, 10, ("bearing",), quality_sigma=1 / 8.0),
}
GENERIC = TypeSpec(2.0, 15, 20, ("bearing",))


def spec_for(equipment_type: str) -> TypeSpec:
    return SPECS.get(equipment_type, GENERIC)
