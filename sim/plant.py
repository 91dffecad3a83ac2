"""The twin's simulation core: a deterministic, time-stepped model of the plant.

One step is one second of twin time. Everything random comes from generators seeded
from (seed, name), never from wall time, so a run is reproducible: the same seed and
the same commands at the same twin times give the same ground truth. The protocol
servers only read ``Machine.snapshot()`` and call ``write_setpoint``/``command``; the
core runs without them for tests and for simulating days as fast as Python allows.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.config import LoadedConfig
from sim.master import Batch, Master, Order, Recipe, RoutingStep, SetpointSpec
from sim.physics import (
    DEGRADATIONS,
    FAULT_KINDS,
    MODBUS_COMMANDS,
    SENSOR_FAULTS,
    STATE_BLOCKED,
    STATE_DOWN_PLANNED,
    STATE_DOWN_UNPLANNED,
    STATE_IDLE,
    STATE_RUNNING,
    STATE_SETUP,
    STATE_STARVED,
    TypeSpec,
    spec_for,
)
from sim.reliability import Reliability
from sim.scale import copy_suffix, scaled_config
from sim.truth import TruthLog
from sim.vision import VisionSim

BUFFER_LOTS = 3  # WIP lots a step's inbound buffer holds before the upstream machine blocks
REPLENISH_DELAY_S = 30 * 60  # forklift time from the warehouse to line-side
DEFAULT_CHANGEOVER_MIN = 15.0


def seed_for(seed: int, name: str) -> int:
    """A stable per-stream seed (Python's str hash is salted per process)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "big")


def renumber(id_: str, copy: int) -> str:
    """The id of an order/batch in plant copy ``copy`` (1 = the original)."""
    if copy == 1:
        return id_
    m = re.match(r"^(.*?)(\d+)$", id_)
    if not m:
        return f"{id_}{copy_suffix(copy)}"
    return f"{m.group(1)}{int(m.group(2)) + (copy - 1) * 10000:0{len(m.group(2))}d}"


@dataclass
class Degradation:
    kind: str
    started: int  # twin second
    fail_at: int
    shape: float  # wear = ((t - started) / (fail_at - started)) ** shape
    sign: float = 1.0  # heater drift direction

    def wear(self, t: int) -> float:
        span = max(1, self.fail_at - self.started)
        return min(1.0, max(0.0, (t - self.started) / span)) ** self.shape


@dataclass
class Lot:
    id: str
    order_id: str
    product: str
    recipe: Recipe
    qty: int  # units entering the current step
    step_idx: int = 0
    done: int = 0  # units finished at the current step
    good: int = 0  # good units out of the current step
    held: bool = False
    copy: int = 1

    @property
    def step(self) -> RoutingStep:
        return self.recipe.routing[self.step_idx]


@dataclass
class LineSim:
    id: str
    base_id: str
    copy: int
    index: int
    machines: list[Machine] = field(default_factory=list)
    queues: dict[int, list[Lot]] = field(default_factory=dict)  # step number -> lots waiting
    active_lots: int = 0
    operator: str = ""
    shift: str = ""


@dataclass
class SpState:
    value: float
    nominal: float
    lo: float
    hi: float


class Machine:
    """One piece of equipment: state machine, sensors, hidden degradation, quality."""

    def __init__(self, plant: Plant, eq_id: str, base_id: str, eq_type: str, line: LineSim,
                 ideal_cycle_s: float, setpoint_names: list[str], tag_names: list[str]) -> None:
        self.plant = plant
        self.id = eq_id
        self.base_id = base_id
        self.type = eq_type
        self.line = line
        self.spec: TypeSpec = spec_for(eq_type)
        self.ideal_cycle_s = ideal_cycle_s
        self.tag_names = tag_names
        self.rng = random.Random(seed_for(plant.seed, eq_id))
        # faults and repairs draw from their own streams: the loop's actions change how
        # often production draws from ``rng``, and must not change the fault schedule
        self.fault_rng = random.Random(seed_for(plant.seed, f"{eq_id}:faults"))
        self.repair_rng = random.Random(seed_for(plant.seed, f"{eq_id}:repair"))
        self.state = STATE_IDLE
        self.reason = "no work"
        self.good_count = 0
        self.scrap_count = 0
        self.cycle_time = 0.0
        self.quality_value = 0.0
        self.lot: Lot | None = None
        self.last_product: str | None = None
        self.recipe: Recipe | None = None
        self.batch = ""
        self.unit_progress = 0.0
        self.unit_len = 0.0
        self.unit_batch_bad = False
        self.setup_until = -1
        self.planned_until = -1
        self.down_until = -1
        self.starved_material: str | None = None
        self.degradations: dict[str, Degradation] = {}
        self.stuck_until = -1
        self.stuck_values: dict[str, float] = {}
        self.noise_until = -1
        self.comms_until = -1
        self.last_held: str | None = None
        self.last_command = ""
        self.last_command_code = 0
        self.sp: dict[str, SpState] = {}
        self.setpoint_names = setpoint_names
        # sensor state
        self.wander = 0.0  # slow normal variation of the vibration baseline
        self.bearing_temp = plant.ambient(0) + self.spec.bearing_temp * 0.3
        self.zone_actual = self.spec.zone_temp if self.spec.zone_temp else plant.ambient(0)
        self.vibration = 0.0
        self.current = 0.0
        self.zone_temp = self.zone_actual
        self.pressure = 0.0
        self.flow = 0.0
        self.has_zone = self.spec.zone_temp is not None or "zone_temp" in tag_names

    # ------------------------------------------------------------- setpoints

    def apply_recipe(self, recipe: Recipe | None) -> None:
        """Load the recipe's nominal setpoints and limits (a changeover resets them)."""
        self.recipe = recipe
        specs: dict[str, SetpointSpec] = recipe.setpoints_for(self.type) if recipe else {}
        for name in self.setpoint_names:
            s = specs.get(name)
            if s is not None:
                self.sp[name] = SpState(s.value, s.value, s.lo, s.hi)
            elif name in self.spec.default_setpoints:
                v, lo, hi = self.spec.default_setpoints[name]
                self.sp[name] = SpState(v, v, lo, hi)
            elif name == "temp_sp" and self.spec.zone_temp is not None:
                v = self.spec.zone_temp
                self.sp[name] = SpState(v, v, v - 15, v + 15)
            elif name not in self.sp:
                self.sp[name] = SpState(0.0, 0.0, 0.0, 0.0)
        self.refresh_ratios()

    def refresh_ratios(self) -> None:
        """Cache what the sensor model reads every second (setpoints change rarely)."""
        self.speed_ratio = self.sp_ratio("speed_sp")
        self.feed_ratio = self.sp_ratio("feed_sp")
        self.recipe_f = self.plant.recipe_factor(self.recipe)

    def sp_ratio(self, name: str) -> float:
        s = self.sp.get(name)
        if s is None or s.nominal == 0:
            return 1.0
        return s.value / s.nominal

    # ------------------------------------------------------------- the step

    def wear(self, kind: str, t: int) -> float:
        d = self.degradations.get(kind)
        return d.wear(t) if d is not None else 0.0

    def step(self, t: int) -> None:
        p = self.plant
        for kind in list(self.degradations):
            d = self.degradations[kind]
            if t >= d.fail_at:
                self._fail(t, d)
        if self.comms_until == t:
            p.truth_event("fault_ended", kind="comms-drop", equipment=self.id)
        if self.stuck_until == t:
            self.stuck_values.clear()
            p.truth_event("fault_ended", kind="sensor-stuck", equipment=self.id)
        if self.noise_until == t:
            p.truth_event("fault_ended", kind="sensor-noise", equipment=self.id)

        if self.state == STATE_DOWN_UNPLANNED and t < self.down_until:
            pass
        elif self.state == STATE_DOWN_UNPLANNED:
            self.state, self.reason = STATE_IDLE, "repaired"
            p.truth_event("repaired", equipment=self.id)
            self._produce(t)
        elif t < self.planned_until:
            self.state = STATE_DOWN_PLANNED
        elif p.in_window(self.line.base_id):
            self.state, self.reason = STATE_DOWN_PLANNED, "planned maintenance window"
        elif t < self.setup_until:
            self.state = STATE_SETUP
        else:
            self._produce(t)
        self._sensors(t)

    def _fail(self, t: int, d: Degradation) -> None:
        repair, wait = self.plant.reliability.repair_s(self.type, self.repair_rng)
        del self.degradations[d.kind]
        self.state = STATE_DOWN_UNPLANNED
        self.reason = f"{d.kind} failure"
        self.down_until = t + repair
        self.unit_progress = 0.0
        self.plant.truth_event("failure", kind=d.kind, equipment=self.id,
                               repair_until=self.plant.iso(t + repair),
                               spare_wait_h=round(wait / 3600, 3))

    def _produce(self, t: int) -> None:
        if self.lot is None and not self._take_lot(t):
            return
        lot = self.lot
        assert lot is not None
        if lot.done >= lot.qty:
            self._hand_over(t, lot)
            return
        if self.unit_len <= 0 and not self._start_unit(t, lot):
            return
        self.state, self.reason = STATE_RUNNING, ""
        self.unit_progress += 1.0
        if self.unit_progress >= self.unit_len:
            self._finish_unit(t, lot)
            if lot.done >= lot.qty:
                self._hand_over(t, lot)

    def _take_lot(self, t: int) -> bool:
        line = self.line
        for queue in line.queues.values():
            for i, lot in enumerate(queue):
                if lot.held:
                    continue
                if self.base_id not in lot.step.equipment:
                    continue
                del queue[i]
                self.lot = lot
                self.unit_progress, self.unit_len = 0.0, 0.0
                if lot.product != self.last_product:
                    minutes = self.plant.changeover_min(line.base_id, self.last_product,
                                                        lot.product)
                    self.last_product = lot.product
                    self.apply_recipe(lot.recipe)
                    if minutes > 0:
                        self.setup_until = t + int(minutes * 60)
                        self.state, self.reason = STATE_SETUP, f"changeover to {lot.product}"
                        return False
                elif self.recipe is not lot.recipe:
                    self.apply_recipe(lot.recipe)
                return True
        self.state = STATE_STARVED if line.active_lots > 0 else STATE_IDLE
        self.reason = "waiting for material flow" if line.active_lots > 0 else "no work"
        return False

    def _start_unit(self, t: int, lot: Lot) -> bool:
        step = lot.step
        self.unit_batch_bad = False
        if step.material and step.qty_per_unit > 0:
            batch = self.plant.consume(self.line, step.material, step.qty_per_unit, t)
            if batch is None:
                self.state, self.reason = STATE_STARVED, f"material {step.material} out"
                return False
            self.batch = batch.id
            self.unit_batch_bad = batch.id in self.plant.bad_batches
        elif lot.step_idx > 0:
            self.unit_batch_bad = self.plant.lot_bad.get(lot.id, False)
        base = step.cycle_s * (1.0 / max(0.2, self.sp_ratio("speed_sp")))
        self.unit_len = max(1.0, base * (1.0 + self.rng.gauss(0.0, 0.02)))
        self.unit_progress = 0.0
        return True

    def _finish_unit(self, t: int, lot: Lot) -> None:
        p = self.plant
        ch = p.master.products[lot.product].characteristic
        ht = ch.half_tol
        rng = self.rng
        causes: dict[str, float] = {}
        for name, eff in self.spec.sp_effect.items():
            s = self.sp.get(name)
            if s is not None and s.hi > s.lo:
                causes[f"setpoint:{name}"] = eff * (s.value - s.nominal) / ((s.hi - s.lo) / 2) * ht
        if self.has_zone and "temp_sp" in self.sp:
            drift = self.zone_actual - self.sp["temp_sp"].value
            causes["heater_drift"] = (abs(self.spec.sp_effect.get("temp_sp", 0.2)) + 0.2) * (
                drift / 10.0) * ht
        tool = self.wear("tool", t)
        if tool > 0:
            causes["tool_wear"] = 0.9 * tool * ht
        clog = self.wear("clog", t)
        if clog > 0:
            causes["nozzle_clog"] = -0.5 * clog * ht
        if self.unit_batch_bad:
            causes["material_batch"] = 0.35 * ht
            p.lot_bad[lot.id] = True
        sigma = self.spec.quality_sigma * ht * (1.0 + 0.8 * tool) * p.shift_sigma
        if self.unit_batch_bad:
            sigma *= 1.4
        value = ch.target + sum(causes.values()) + rng.gauss(0.0, sigma)
        self.quality_value = round(value, 5)
        self.cycle_time = round(self.unit_len, 2)
        lot.done += 1
        self.unit_len, self.unit_progress = 0.0, 0.0
        if ch.lsl <= value <= ch.usl:
            self.good_count += 1
            lot.good += 1
            p.vision.finished(self, lot, t, True)
            return
        self.scrap_count += 1
        p.vision.finished(self, lot, t, False)
        main, size = "random", 0.0
        for k, v in causes.items():
            if abs(v) > size:
                main, size = k, abs(v)
        if size < 0.3 * ht:
            main = "random"
        p.truth_event("scrap", equipment=self.id, lot=lot.id, product=lot.product,
                      value=round(value, 5), cause=main,
                      contributions={k: round(v / ht, 3) for k, v in causes.items()})

    def _hand_over(self, t: int, lot: Lot) -> None:
        p = self.plant
        line = self.line
        if lot.step_idx + 1 >= len(lot.recipe.routing):
            self.lot = None
            line.active_lots -= 1
            p.lot_completed(lot)
            return
        nxt = lot.recipe.routing[lot.step_idx + 1]
        q = line.queues.setdefault(nxt.step, [])
        if len(q) >= BUFFER_LOTS:
            self.state, self.reason = STATE_BLOCKED, "downstream buffer full"
            return
        if lot.good == 0:
            self.lot = None
            line.active_lots -= 1
            p.truth_event("lot_scrapped", lot=lot.id, order=lot.order_id, equipment=self.id)
            p.vision.lots.pop(lot.id, None)
            return
        lot.step_idx += 1
        lot.qty, lot.done, lot.good = lot.good, 0, 0
        p.vision.handed_over(lot)
        q.append(lot)
        self.lot = None
        self.state, self.reason = STATE_IDLE, "lot handed over"

    def release_current_lot(self) -> None:
        """A held lot leaves the machine and waits at the front of its step's queue."""
        lot = self.lot
        if lot is None:
            return
        self.line.queues.setdefault(lot.step.step, []).insert(0, lot)
        self.lot = None
        self.unit_len, self.unit_progress = 0.0, 0.0

    # ------------------------------------------------------------- sensors

    def _sensors(self, t: int) -> None:
        p = self.plant
        rng = self.rng
        spec = self.spec
        running = self.state == STATE_RUNNING
        load = 1.0 if running else (0.0 if self.state in (STATE_DOWN_UNPLANNED,
                                                           STATE_DOWN_PLANNED) else 0.15)
        speed = self.speed_ratio
        feed = self.feed_ratio
        if self.degradations:
            wb = self.wear("bearing", t)
            wt = self.wear("tool", t)
            wh = self.wear("heater", t)
            wc = self.wear("clog", t)
        else:
            wb = wt = wh = wc = 0.0
        noise = 6.0 if t < self.noise_until else 1.0
        self.wander = self.wander * 0.9995 + rng.gauss(0.0, 0.012)
        rf = self.recipe_f
        vib = (spec.vibration * (0.2 + 0.8 * load) * speed ** 1.5 * rf * p.shift_factor
               + (5.8 * wb + 0.6 * wt) * (0.4 + 0.6 * load) + self.wander
               + rng.gauss(0.0, 0.1 * spec.vibration * noise))
        self.vibration = max(0.05, vib)
        amb = p.amb
        target = amb + spec.bearing_temp * (0.3 + 0.7 * load) * speed + 30.0 * wb
        self.bearing_temp += (target - self.bearing_temp) / 900.0
        cur = (spec.current * (0.1 + 0.9 * load) * math.sqrt(max(0.1, speed * feed))
               + 10.0 * wt * load + 3.0 * wb * load + rng.gauss(0.0, 0.012 * spec.current))
        self.current = max(0.0, cur)
        if self.has_zone:
            sp = self.sp["temp_sp"].value if "temp_sp" in self.sp else (spec.zone_temp or amb)
            heating = self.state != STATE_DOWN_UNPLANNED
            d = self.degradations.get("heater")
            sign = d.sign if d is not None else 1.0
            ztarget = (sp + sign * 18.0 * wh) if heating else amb
            self.zone_actual += (ztarget - self.zone_actual) / 300.0
            self.zone_temp = self.zone_actual + rng.gauss(0.0, 0.4 * noise)
        if spec.pressure is not None:
            base = self.sp["pressure_sp"].value if "pressure_sp" in self.sp else spec.pressure
            factor = 0.3 if spec.flow is None and self.type == "oven" else 0.0
            pr = base * (factor + (1 - factor) * load) * (1.0 + 0.3 * wc)
            self.pressure = max(0.0, pr + rng.gauss(0.0, 0.008 * spec.pressure))
        if spec.flow is not None:
            fl = spec.flow * load * (1.0 - 0.55 * wc)
            self.flow = max(0.0, fl + rng.gauss(0.0, 0.01 * spec.flow))
        if t < self.stuck_until:
            for k, v in self.stuck_values.items():
                setattr(self, k, v)

    # ------------------------------------------------------------- faults

    def start_fault(self, t: int, kind: str, source: str, done: float = 0.0) -> None:
        p = self.plant
        rng = self.fault_rng
        if kind in DEGRADATIONS:
            if kind in self.degradations:
                return
            ttf = int(rng.uniform(8.0, 16.0) * 3600)
            began = t - int(done * ttf)
            d = Degradation(kind, began, began + ttf, rng.uniform(1.6, 2.4),
                            1.0 if rng.random() < 0.7 else -1.0)
            self.degradations[kind] = d
            p.truth_event("fault_started", kind=kind, equipment=self.id, source=source,
                          failure_at=p.iso(d.fail_at))
            return
        dur = int(rng.uniform(2, 10) * 60) if kind == "comms-drop" else int(
            rng.uniform(1, 3) * 3600)
        if kind == "comms-drop":
            self.comms_until = t + dur
        elif kind == "sensor-stuck":
            self.stuck_until = t + dur
            self.stuck_values = {"vibration": self.vibration, "bearing_temp": self.bearing_temp}
        else:
            self.noise_until = t + dur
        p.truth_event("fault_started", kind=kind, equipment=self.id, source=source,
                      ends_at=p.iso(t + dur))

    def comms_ok(self, t: int) -> bool:
        return t >= self.comms_until

    # ------------------------------------------------------------- publishing

    def snapshot(self) -> dict[str, Any]:
        """Tag name -> current value, for the protocol servers."""
        lot = self.lot
        out: dict[str, Any] = {
            "state": self.state,
            "state_reason": self.reason,
            "status_running": self.state == STATE_RUNNING,
            "status_fault": self.state == STATE_DOWN_UNPLANNED,
            "good_count": self.good_count,
            "scrap_count": self.scrap_count,
            "cycle_time": self.cycle_time,
            "vibration_rms": round(self.vibration, 4),
            "bearing_temp": round(self.bearing_temp, 3),
            "motor_current": round(self.current, 2),
            "quality_value": self.quality_value,
            "lot": lot.id if lot else "",
            "order": lot.order_id if lot else "",
            "recipe": self.recipe.id if self.recipe else "",
            "batch": self.batch,
            "operator": self.line.operator,
            "command": self.last_command,
            "zone_temp": round(self.zone_temp, 3),
            "pressure": round(self.pressure, 3),
            "flow": round(self.flow, 3),
        }
        rec = self.plant.vision.snapshot(self.id)
        if rec is not None:
            out["vision"] = rec
        for name, s in self.sp.items():
            out[name] = s.value
        return out


class Plant:
    """The whole twin: lines, machines, orders, material, shifts, faults, ground truth."""

    def __init__(self, loaded: LoadedConfig, master: Master, *, seed: int = 42,
                 start: datetime, scale: int = 1, random_faults_per_day: float = 0.0,
                 truth: TruthLog | None = None, lines: list[str] | None = None,
                 speed: float = 1.0, reliability: Reliability | None = None) -> None:
        self.base = loaded
        self.reliability = reliability or Reliability()
        self.loaded = scaled_config(loaded, scale) if scale > 1 else loaded
        self.master = master
        self.seed = seed
        self.start = start
        self.scale = scale
        self.t = 0
        self.truth = truth or TruthLog(None)
        self.rng = random.Random(seed_for(seed, "plant"))
        self.fault_rate = random_faults_per_day
        self.next_random_fault = self._draw_next_fault(0)
        self.shift_factor = 1.0
        self.shift_sigma = 1.0
        self._shift_effects = {
            s.id: (self.rng.uniform(0.93, 1.08), self.rng.uniform(0.95, 1.12))
            for s in master.shifts
        }
        self._recipe_factors = {rid: self.rng.uniform(0.85, 1.2) for rid in master.recipes}
        self.bad_batches: set[str] = set()
        self.lot_bad: dict[str, bool] = {}
        self.injections: list[tuple[int, str, str, float]] = []
        self.lines: dict[str, LineSim] = {}
        self.machines: dict[str, Machine] = {}
        self.stock: dict[tuple[int, str], list[list[Any]]] = {}  # (copy, location) -> batches
        self.pending_replenish: list[tuple[int, LineSim, str]] = []
        self.orders: list[tuple[int, Order, LineSim]] = []
        self.order_left: dict[str, int] = {}
        self._lot_seq = 0
        self._next_order = 0
        self._window_cache: dict[str, bool] = {}
        self._seen_commands: set[str] = set()
        self.amb = self.ambient(0)
        self._build(lines)
        self.vision = VisionSim(self)
        self.truth_event("start", seed=seed, scale=scale, speed=speed,
                         epoch=self.iso(0), bad_batches=sorted(self.bad_batches),
                         equipment=list(self.machines))
        self._update_shift(0)

    # ------------------------------------------------------------- building

    def _build(self, only_lines: list[str] | None) -> None:
        cfg = self.loaded.config
        for li, line in enumerate(cfg.lines):
            base_line, copy = _split_copy(line.id, self.scale)
            if only_lines is not None and base_line not in only_lines:
                continue
            ls = LineSim(line.id, base_line, copy, li)
            self.lines[line.id] = ls
            for eq in line.equipment:
                base_eq, _ = _split_copy(eq.id, self.scale)
                tags = self.loaded.tags_for(eq.id)
                names = [t.name for t in tags]
                sps = [t.name for t in tags if t.spec.kind == "setpoint"]
                m = Machine(self, eq.id, base_eq, eq.type, ls, eq.ideal_cycle_s, sps, names)
                first = next((r for r in self.master.recipes.values()
                              if any(base_eq in s.equipment for s in r.routing)), None)
                m.apply_recipe(first)
                ls.machines.append(m)
                self.machines[eq.id] = m
        copies = sorted({ls.copy for ls in self.lines.values()})
        for c in copies:
            for b in self.master.batches:
                bid = renumber(b.id, c)
                self.stock.setdefault((c, b.location), []).append([bid, b, b.quantity])
                if (c == 1 and self.rng.random() < 0.25) or (c > 1 and b.id in self.bad_batches):
                    self.bad_batches.add(bid)
        for ls in self.lines.values():
            for o in self.master.orders:
                if self.master.products[o.product].line == ls.base_id:
                    self.orders.append((int(o.release_h * 3600), o, ls))
        self.orders.sort(key=lambda x: (x[0], x[1].id, x[2].id))

    # ------------------------------------------------------------- time

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t)

    def iso(self, t: int) -> str:
        return (self.start + timedelta(seconds=t)).isoformat().replace("+00:00", "Z")

    def ambient(self, t: int) -> float:
        hour = (self.start.hour + self.start.minute / 60 + t / 3600.0) % 24
        return 22.0 + 3.0 * math.sin(2 * math.pi * (hour - 9.0) / 24.0)

    def in_window(self, base_line: str) -> bool:
        return self._window_cache.get(base_line, False)

    def truth_event(self, event: str, **fields: Any) -> None:
        self.truth.write(self.now(), event, **fields)

    def recipe_factor(self, recipe: Recipe | None) -> float:
        return self._recipe_factors.get(recipe.id, 1.0) if recipe else 1.0

    def changeover_min(self, base_line: str, frm: str | None, to: str) -> float:
        if frm is None or frm == to:
            return 0.0
        return self.master.changeovers.get((base_line, frm, to), DEFAULT_CHANGEOVER_MIN)

    # ------------------------------------------------------------- stepping

    def step(self) -> None:
        """Advance the twin by one second."""
        t = self.t
        if t % 60 == 0:
            self._minutely(t)
        self.amb = self.ambient(t)
        while self._next_order < len(self.orders) and self.orders[self._next_order][0] <= t:
            self._release(self.orders[self._next_order])
            self._next_order += 1
        if self.injections and self.injections[0][0] <= t:
            while self.injections and self.injections[0][0] <= t:
                _, kind, eq, done = self.injections.pop(0)
                self.machines[eq].start_fault(t, kind, "injected", done)
        if t >= self.next_random_fault:
            self._random_fault(t)
        for m in self.machines.values():
            m.step(t)
        self.t = t + 1

    def run(self, seconds: int) -> None:
        for _ in range(int(seconds)):
            self.step()

    def _minutely(self, t: int) -> None:
        th = t / 3600.0
        for w in self.master.windows:
            self._window_cache[w.line] = th >= w.start_h and (
                (th - w.start_h) % w.every_h) < w.duration_h
        if t % 900 == 0:
            self._update_shift(t)
        if self.pending_replenish:
            due = [r for r in self.pending_replenish if r[0] <= t]
            for r in due:
                self.pending_replenish.remove(r)
                self._move_from_warehouse(r[1], r[2], None, t)

    def _update_shift(self, t: int) -> None:
        now = self.start + timedelta(seconds=t)
        minute = now.hour * 60 + now.minute
        for s in self.master.shifts:
            if s.covers(minute):
                changed = False
                for ls in self.lines.values():
                    op = s.crew[ls.index % len(s.crew)] if s.crew else ""
                    if ls.shift != s.id:
                        changed = True
                    ls.shift, ls.operator = s.id, op
                if changed:
                    self.shift_factor, self.shift_sigma = self._shift_effects[s.id]
                    self.truth_event("shift_change", shift=s.id, crew=list(s.crew))
                return

    def _release(self, item: tuple[int, Order, LineSim]) -> None:
        _, order, ls = item
        product = self.master.products[order.product]
        recipe = self.master.recipe_for(order.product)
        oid = renumber(order.id, ls.copy)
        left = order.quantity
        self.order_left[oid] = 0
        lots = []
        while left > 0:
            n = min(product.lot_size, left)
            left -= n
            self._lot_seq += 1
            lot = Lot(f"L-{self._lot_seq:05d}", oid, order.product, recipe, n, copy=ls.copy)
            ls.queues.setdefault(recipe.routing[0].step, []).append(lot)
            ls.active_lots += 1
            self.order_left[oid] += 1
            lots.append(lot.id)
        self.truth_event("order_released", order=oid, line=ls.id, product=order.product,
                         quantity=order.quantity, lots=lots,
                         due=self.iso(int(order.due_h * 3600)))

    def lot_completed(self, lot: Lot) -> None:
        self.vision.lot_done(lot)
        self.truth_event("lot_completed", lot=lot.id, order=lot.order_id, good=lot.good)
        self.order_left[lot.order_id] -= 1
        if self.order_left[lot.order_id] == 0:
            self.truth_event("order_completed", order=lot.order_id)

    def _draw_next_fault(self, t: int) -> int:
        if self.fault_rate <= 0:
            return 1 << 62
        return t + max(1, int(self.rng.expovariate(self.fault_rate / 86400.0)))

    def _random_fault(self, t: int) -> None:
        self.next_random_fault = self._draw_next_fault(t)
        if not self.machines:
            return
        m = self.rng.choice(list(self.machines.values()))
        kind = self.rng.choice(list(m.spec.degradations) + list(SENSOR_FAULTS))
        m.start_fault(t, kind, "random")

    # ------------------------------------------------------------- material

    def consume(self, ls: LineSim, material: str, qty: float, t: int) -> Batch | None:
        loc = f"{ls.base_id}-LS"
        for entry in self.stock.get((ls.copy, loc), []):
            bid, batch, left = entry
            if batch.material == material and left >= qty - 1e-9:
                entry[2] = left - qty
                if entry[2] < qty:
                    self.truth_event("batch_used_up", batch=bid, line=ls.id, material=material)
                return Batch(bid, batch.material, batch.supplier, batch.quantity, loc)
        if not any(r[1] is ls and r[2] == material for r in self.pending_replenish):
            self.truth_event("material_out", line=ls.id, material=material)
            self.pending_replenish.append((t + REPLENISH_DELAY_S, ls, material))
        return None

    def _move_from_warehouse(self, ls: LineSim, material: str, batch_id: str | None,
                             t: int) -> str | None:
        wh = self.stock.get((ls.copy, "WH"), [])
        for i, entry in enumerate(wh):
            if entry[1].material == material and entry[2] > 0 and (
                    batch_id is None or entry[0] == batch_id):
                del wh[i]
                self.stock.setdefault((ls.copy, f"{ls.base_id}-LS"), []).append(entry)
                self.truth_event("replenished", line=ls.id, material=material, batch=entry[0])
                return entry[0]
        return None

    def line_side_stock(self, line_id: str) -> dict[str, float]:
        ls = self.lines[line_id]
        out: dict[str, float] = {}
        for bid, _b, left in self.stock.get((ls.copy, f"{ls.base_id}-LS"), []):
            out[bid] = left
        return out

    # ------------------------------------------------------------- control

    def inject(self, kind: str, equipment: str, at_s: int, done: float = 0.0) -> None:
        """Start a fault at twin second ``at_s``; ``done`` (0 <= done < 1) starts a wear
        fault that far into its course (it began before the twin did)."""
        if not 0.0 <= done < 1.0:
            raise ValueError(f"done must be within [0, 1), not {done}")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r} (kinds: {', '.join(FAULT_KINDS)})")
        if equipment not in self.machines:
            raise ValueError(f"unknown equipment {equipment!r}")
        m = self.machines[equipment]
        if kind in DEGRADATIONS and kind not in m.spec.degradations:
            raise ValueError(f"{equipment} ({m.type}) has no {kind} degradation "
                             f"(it has: {', '.join(m.spec.degradations)})")
        self.injections.append((int(at_s), kind, equipment, float(done)))
        self.injections.sort(key=lambda x: x[0])

    def write_setpoint(self, equipment: str, name: str, value: float) -> str | None:
        """Apply a setpoint write; the refusal message, or None when accepted."""
        m = self.machines.get(equipment)
        s = m.sp.get(name) if m else None
        if m is None or s is None:
            return f"no setpoint {name} on {equipment}"
        if not (isinstance(value, (int, float)) and math.isfinite(value)):
            return "not a finite number"
        if not s.lo <= value <= s.hi:
            self.truth_event("setpoint_refused", equipment=equipment, name=name,
                             value=value, lo=s.lo, hi=s.hi)
            return f"{name} {value} outside recipe limits [{s.lo}, {s.hi}]"
        old = s.value
        s.value = float(value)
        m.refresh_ratios()
        self.truth_event("setpoint", equipment=equipment, name=name, value=float(value),
                         old=old)
        return None

    def command(self, equipment: str, cmd: dict[str, Any] | str | int) -> str | None:
        """A work-order completion or lot move; the refusal message, or None when done."""
        m = self.machines.get(equipment)
        if m is None:
            return f"unknown equipment {equipment!r}"
        if isinstance(cmd, int):
            if cmd == 0:
                return None
            name = MODBUS_COMMANDS.get(cmd)
            if name is None:
                return f"unknown command code {cmd}"
            m.last_command_code = cmd
            cmd = ({"cmd": name} if name in ("hold_lot", "release_lot")
                   else {"cmd": "complete_wo", "fault": name})
        elif isinstance(cmd, str):
            try:
                cmd = json.loads(cmd)
            except json.JSONDecodeError:
                return "command is not JSON"
            if not isinstance(cmd, dict):
                return "command must be a JSON object"
        err = self._command(m, cmd)
        if err is None:
            m.last_command = json.dumps(cmd, sort_keys=True)
        else:
            self.truth_event("command_refused", equipment=equipment, command=cmd, error=err)
        return err

    def _command(self, m: Machine, cmd: dict[str, Any]) -> str | None:
        t = self.t
        kind = cmd.get("cmd")
        key = cmd.get("id") or (cmd.get("wo") if kind == "complete_wo" else None)
        if key is not None and str(key) in self._seen_commands:
            # a retried write (the console timed out waiting for the ack) must not act twice
            self.truth_event("command_duplicate", equipment=m.id, command=cmd)
            return None
        err = self._execute(m, cmd, kind, t)
        if err is None and key is not None:
            self._seen_commands.add(str(key))
        return err

    def _execute(self, m: Machine, cmd: dict[str, Any], kind: Any, t: int) -> str | None:
        if kind == "complete_wo":
            fault = cmd.get("fault")
            if fault not in FAULT_KINDS:
                return f"unknown fault {fault!r} (kinds: {', '.join(FAULT_KINDS)})"
            d = m.degradations.pop(fault, None)
            averted = d is not None
            if fault == "sensor-stuck" and t < m.stuck_until:
                m.stuck_until, averted = t, True
                m.stuck_values.clear()
            if fault == "sensor-noise" and t < m.noise_until:
                m.noise_until, averted = t, True
            if m.state != STATE_DOWN_UNPLANNED:
                m.planned_until = t + self.reliability.planned_s(m.repair_rng)
                m.state, m.reason = STATE_DOWN_PLANNED, f"maintenance {cmd.get('wo', '')}".strip()
                m.unit_progress = 0.0
            self.truth_event("wo_completed", equipment=m.id, fault=fault, wo=cmd.get("wo"),
                             fault_was_active=averted,
                             would_have_failed_at=self.iso(d.fail_at) if d else None)
            return None
        if kind in ("hold_lot", "release_lot"):
            lot_id = cmd.get("lot")
            if kind == "hold_lot" and lot_id is None:
                lot_id = m.lot.id if m.lot else None
            if kind == "release_lot" and lot_id is None:
                lot_id = m.last_held
            if lot_id is None:
                return "no lot given and none on this equipment"
            lot = self._find_lot(lot_id)
            if lot is None:
                return f"unknown or finished lot {lot_id!r}"
            lot.held = kind == "hold_lot"
            if lot.held:
                m.last_held = lot.id
                for mm in self.machines.values():
                    if mm.lot is lot:
                        mm.release_current_lot()
            self.truth_event("lot_held" if lot.held else "lot_released", lot=lot.id,
                             equipment=m.id, reason=cmd.get("reason"))
            return None
        if kind == "replenish":
            material = cmd.get("material")
            if not isinstance(material, str):
                return "replenish needs a material"
            got = self._move_from_warehouse(m.line, material, cmd.get("batch"), t)
            if got is None:
                return f"no warehouse stock of {material}"
            self.pending_replenish = [r for r in self.pending_replenish
                                      if not (r[1] is m.line and r[2] == material)]
            return None
        return f"unknown command {kind!r} (complete_wo, hold_lot, release_lot, replenish)"

    def _find_lot(self, lot_id: str) -> Lot | None:
        for ls in self.lines.values():
            for q in ls.queues.values():
                for lot in q:
                    if lot.id == lot_id:
                        return lot
            for m in ls.machines:
                if m.lot is not None and m.lot.id == lot_id:
                    return m.lot
        return None


def _split_copy(id_: str, scale: int) -> tuple[str, int]:
    if scale > 1:
        m = re.match(r"^(.*)-x(\d+)$", id_)
        if m:
            return m.group(1), int(m.group(2))
    return id_, 1
