"""The twin's vision stations: a camera at the outfeed of a line's last machine.

A machine with a ``vision`` tag in the config is a station. Every good unit a machine
of that line finishes may carry a *latent* defect that follows the machine's hidden
state (the causes of ``Machine._finish_unit``), drawn from a stream of its own so the
physics and the fault schedule do not change:

- tool wear (lathe, mill, grinder, press) → ``burr``;
- heater drift: a moulder or extruder running hot → ``sink_mark``, cold →
  ``short_shot``; an oven → ``discoloration``; a washer → ``residue``;
- a clog → ``incomplete_fill`` (moulder, extruder), ``residue`` (washer);
- a bad material batch → ``contamination``.

Units keep their defects through the later steps of their lot (FIFO: the unit a step
finishes is the oldest good unit of the step before). The station sees every unit
the last machine passes: a true defect is found with ``RECALL`` and a confident score;
a clean unit is rejected with ``FALSE_REJECT`` (its "defect" a low-confidence guess).
A rejected unit is sorted out (it leaves the lot's good quantity, the machine's
counter keeps it: loopline books it from good to scrap).

Published per station as a record (``snapshot()["vision"]``): unit counter (1..65535,
then 1 again), unit id, result, defects with confidence, image reference; the OPC UA
server serves it as a JSON string, the Modbus server as registers (counter, result,
class bitmask, confidence × 100 per class). Ground truth: ``vision_unit`` for every
unit with a true defect or a reject (caught / escaped / false reject) and
``vision_lot`` when a lot leaves the station.
"""

from __future__ import annotations

import json
import random
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.plant import Lot, Machine, Plant

CLASSES = ("burr", "short_shot", "sink_mark", "incomplete_fill", "contamination", "residue",
           "discoloration", "scratch")
RECALL = 0.95  # a true defect is found this often
FALSE_REJECT = 0.02  # a clean unit is rejected this often
TOOL_TYPES = ("lathe", "mill", "grinder", "press")
MELT_TYPES = ("molder", "extruder")


def _p(x: float, lo: float, gain: float, cap: float) -> float:
    return min(cap, max(0.0, (x - lo) * gain))


def latent_defects(m: Machine, t: int, rng: random.Random) -> frozenset[str]:
    """The defects a good unit finished by ``m`` at twin second ``t`` carries."""
    out: set[str] = set()
    if m.type in TOOL_TYPES and rng.random() < _p(m.wear("tool", t), 0.1, 1.2, 0.9):
        out.add("burr")
    if m.has_zone and "temp_sp" in m.sp:
        drift = m.zone_actual - m.sp["temp_sp"].value
        if rng.random() < _p(abs(drift), 3.0, 1 / 12, 0.8):
            if m.type in MELT_TYPES:
                out.add("sink_mark" if drift > 0 else "short_shot")
            elif m.type == "oven":
                out.add("discoloration")
            elif m.type == "washer":
                out.add("residue")
    clog = m.wear("clog", t)
    if clog > 0 and rng.random() < _p(clog, 0.1, 1.2, 0.8):
        out.add("incomplete_fill" if m.type in MELT_TYPES else "residue")
    if m.unit_batch_bad and rng.random() < 0.3:
        out.add("contamination")
    return frozenset(out)


@dataclass
class _LotUnits:
    inbound: deque[frozenset[str]] = field(default_factory=deque)  # from the step before
    out: deque[frozenset[str]] = field(default_factory=deque)  # good units of this step
    inspected: int = 0
    defective: int = 0
    caught: int = 0
    escaped: int = 0
    false_rejects: int = 0


@dataclass
class Station:
    machine_id: str
    classes: tuple[str, ...]
    rng: random.Random
    counter: int = 0
    record: dict[str, Any] = field(default_factory=dict)
    # (twin second, record) since the last drain: a push server (OPC UA) publishes each
    # unit with its own time even when several finish within one publishing tick
    pending: deque[tuple[int, dict[str, Any]]] = field(
        default_factory=lambda: deque(maxlen=64))
    inspected: int = 0
    false_rejects: int = 0
    clean: int = 0


class VisionSim:
    """Latent defects on the lines that have a station, and the stations' results."""

    def __init__(self, plant: Plant) -> None:
        from sim.plant import seed_for

        self.plant = plant
        self.stations: dict[str, Station] = {}
        self.rngs: dict[str, random.Random] = {}
        for ls in plant.lines.values():
            for m in ls.machines:
                tag = next((t for t in plant.loaded.tags_for(m.id) if t.spec.kind == "vision"),
                           None)
                if tag is None:
                    continue
                vm = tag.spec.vision
                classes = tuple(vm.classes) if vm is not None and vm.classes else CLASSES
                self.stations[m.id] = Station(m.id, classes, random.Random(
                    seed_for(plant.seed, f"{m.id}:vision")))
                for other in ls.machines:
                    self.rngs[other.id] = random.Random(
                        seed_for(plant.seed, f"{other.id}:latent"))
        self.lots: dict[str, _LotUnits] = {}

    def _units(self, lot: Lot) -> _LotUnits:
        u = self.lots.get(lot.id)
        if u is None:
            u = self.lots[lot.id] = _LotUnits()
        return u

    def finished(self, m: Machine, lot: Lot, t: int, good: bool) -> None:
        """A unit of ``lot`` left ``m`` (good or scrapped by the machine itself)."""
        rng = self.rngs.get(m.id)
        if rng is None:
            return
        u = self._units(lot)
        carried = u.inbound.popleft() if u.inbound else frozenset()
        if not good:
            return
        defects = carried | latent_defects(m, t, rng)
        st = self.stations.get(m.id)
        if st is None:
            u.out.append(defects)
        else:
            self._inspect(st, lot, u, defects)

    def handed_over(self, lot: Lot) -> None:
        """The lot moves to its next step: its good units are that step's inbound."""
        u = self.lots.get(lot.id)
        if u is not None:
            u.inbound, u.out = u.out, deque()

    def lot_done(self, lot: Lot) -> None:
        u = self.lots.pop(lot.id, None)
        if u is not None and u.inspected:
            self.plant.truth_event("vision_lot", lot=lot.id, order=lot.order_id,
                                   inspected=u.inspected, defective=u.defective,
                                   caught=u.caught, escaped=u.escaped,
                                   false_rejects=u.false_rejects)

    def _inspect(self, st: Station, lot: Lot, u: _LotUnits, true: frozenset[str]) -> None:
        p = self.plant
        rng = st.rng
        found: dict[str, float] = {}
        for c in sorted(true):  # a class the station was not taught passes unseen
            if c in st.classes and rng.random() < RECALL:
                found[c] = round(rng.uniform(0.75, 0.99), 2)
        false_reject = False
        if not true:
            st.clean += 1
            if rng.random() < FALSE_REJECT:
                false_reject = True
                found[rng.choice(st.classes)] = round(rng.uniform(0.5, 0.8), 2)
        st.counter = st.counter % 65535 + 1
        st.inspected += 1
        unit = f"{st.machine_id}-{st.counter:05d}"
        passed = not found
        st.record = {"unit": unit, "n": st.counter, "result": "pass" if passed else "fail",
                     "defects": [{"class": c, "confidence": v} for c, v in found.items()],
                     "image": f"img/{st.machine_id}/{lot.id}/{st.counter:05d}.png",
                     "lot": lot.id}
        st.pending.append((p.t, st.record))
        u.inspected += 1
        if true:
            u.defective += 1
            if passed:
                u.escaped += 1
            else:
                u.caught += 1
        if false_reject:
            u.false_rejects += 1
            st.false_rejects += 1
        if not passed:
            lot.good -= 1  # sorted out: it does not ship with the lot
        if true or not passed:
            p.truth_event("vision_unit", station=st.machine_id, unit=unit, lot=lot.id,
                          true=sorted(true), flagged=sorted(found), passed=passed,
                          false_reject=false_reject)

    def drain(self, machine_id: str) -> list[tuple[int, dict[str, Any]]]:
        """The station's results since the last drain, oldest first."""
        st = self.stations.get(machine_id)
        if st is None:
            return []
        out = list(st.pending)
        st.pending.clear()
        return out

    def snapshot(self, machine_id: str) -> dict[str, Any] | None:
        st = self.stations.get(machine_id)
        return st.record if st is not None else None


def as_json(record: dict[str, Any] | None) -> str:
    """The OPC UA string node's text (empty object before the first unit)."""
    return json.dumps(record or {}, separators=(",", ":"), sort_keys=True)


def as_registers(record: dict[str, Any] | None, classes: tuple[str, ...] | list[str]
                 ) -> list[int]:
    """Counter, result code (0 pass, 1 fail), class bitmask, confidence × 100 per class."""
    regs = [0] * (3 + len(classes))
    if not record:
        return regs
    regs[0] = int(record["n"]) & 0xFFFF
    regs[1] = 0 if record["result"] == "pass" else 1
    for d in record["defects"]:
        if d["class"] in classes:
            i = list(classes).index(d["class"])
            regs[2] |= 1 << i
            regs[3 + i] = round(float(d["confidence"]) * 100)
    return regs
