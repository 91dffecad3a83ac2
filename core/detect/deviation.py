"""Deviation from a reference on the same equipment: a setpoint tag, or the signal's own
baseline under the same recipe and setpoints.

Wear that fixed tag limits cannot see because the normal value differs per recipe: a
heater drifting away from its temperature setpoint, a worn tool drawing more motor
current, a clogging nozzle raising pressure and lowering flow. For each signal tag the
detector keeps a time-weighted EWMA (``EWMA_TAU_S``) of the relative deviation

    (value - reference) / |reference|

where the reference is either

- ``reference = "<setpoint tag name>"`` (say ``"temp_sp"``): that tag's latest value on
  the same equipment (``zone_temp`` vs ``temp_sp``), or
- ``reference = "baseline"``: the signal's own level under the same recipe, setpoints
  and load class: the median of the first ``LEARN_S`` (and ``LEARN_N`` samples) after the
  settle time, remembered per key. After each down period a new pass re-checks it, and
  moves it only when it is clearly healthier (by half the threshold: down for a
  high-side detector, up for a low-side one), so a baseline first learned while a fault
  was already growing, or from a mixed pass, is corrected after the repair, and pass-to-
  pass noise never drags it.

``threshold`` is the allowed relative deviation: positive fires above the reference
(``+0.05`` = 5 % above), negative below; the problem clears once the EWMA is back
inside by ``hysteresis`` (same relative units) — as with limits, each side is its own
alarm ("deviation:<tag>:hi" / ":lo"). The condition must hold for ``on_delay_s``, and
the filtered deviation must also stand ``Z_MIN`` times out of its own noise: the
samples' scatter around it, measured per load class, through the filter at the usual
sampling interval. A polled tag that reports every two minutes at 5 % noise cannot fire
on noise. A single sample more than ``REJECT`` off its reference is dropped: it comes
from across a state change the state tag has not shown yet. A
baseline deviation clears only in the load class it fired in (wear shows less at idle, so
an idle hour must not clear and re-raise it).

Current, pressure and flow follow the load, so a baseline is kept per load class as
well (running; idle, setup, starved or blocked — the drive still turns), and nothing is
measured while the machine is down (planned or unplanned: no load, and no heat after a
breakdown). After a down period, a change of recipe or setpoints, or the start,
``settle_s`` are ignored (a zone that was cold during a repair takes ~20 minutes to come
back to its setpoint; ``SETTLE_S`` for setpoint references, ``SWITCH_S`` for baselines),
and ``SWITCH_S`` after a change of load class (the state and the signal arrive in
separate samples). Bad and Uncertain samples are skipped and restart a pending on-delay.

Motor current also rises with bearing wear (less than with a worn tool, but it does):
while the current deviates, the detector watches the machine's vibration against its
own baseline too (``COMPANION``) and, when vibration is up by more than a worn tool can
explain, names the bearing instead of the tool.

A detection carries ``fault_mode`` (``FAULT_HINT``: what the twin's and maintenance's
vocabulary calls the wear this direction of this signal points at), the signal with its
value, its reference as ``baseline`` and its trend, so the engine can answer it with a
maintenance work order and phrase why.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.detect.events import Detection, Priority, context_ids
from core.detect.tags import TagInfo, fmt
from core.samples import ContextSample, Quality

DOWN_STATES = frozenset({3, 4})  # down planned/unplanned: no load (no heat when unplanned)
# load classes: running carries the load; idle, setup, starved and blocked idle the drive
LOAD_CLASS = {0: "idle", 1: "run", 2: "idle", 5: "idle", 6: "idle"}
EWMA_TAU_S = 300.0  # noise filter of the deviation (sensor noise x6 still stays ~0.3 %)
SETTLE_S = 1200.0  # ignored after a restart, a recipe or setpoint change (setpoint refs)
SWITCH_S = 60.0  # ignored after a change of load class (and the settle of baselines)
LEARN_S = 1200.0  # time in one (recipe, setpoints, load class) a baseline is learned over
LEARN_N = 30  # ... and at least this many samples (a polled tag may report every 2 min)
MAX_GAP_S = 900.0  # a longer gap between samples restarts the EWMA
REJECT = 0.5  # a sample this far off (relative) is another load class or a transient
Z_MIN = 4.0  # the filtered deviation must also stand this many noise sigmas out
NOISE_N = 10  # samples in a load class before its noise is known (and anything fires)
TREND_STEP = timedelta(minutes=10)
TREND_ANCHORS = 13  # up to two hours of trend in the evidence
EXPECTED_DOWNTIME_H = 3.0  # a wear failure's repair (the plant's records: 1.5-4 h)
# which wear a deviation points at, by signal and side
FAULT_HINT: dict[tuple[str, str], str] = {
    ("motor_current", "hi"): "tool", ("zone_temp", "hi"): "heater",
    ("zone_temp", "lo"): "heater", ("pressure", "hi"): "clog", ("flow", "lo"): "clog",
}
# signal -> (companion signal, absolute rise of the companion over its baseline, the wear
# that rise names instead): a worn tool adds at most 0.6 mm/s of vibration, a bearing
# worn enough to move the current by 7 % some 3-5 mm/s; the rest is the vibration's own
# slow wander (about 0.4 mm/s)
COMPANION: dict[str, tuple[str, float, str]] = {
    "motor_current": ("vibration_rms", 2.0, "bearing"),
}


@dataclass(slots=True)
class _Baseline:
    value: float  # the median of a learning pass


@dataclass(slots=True)
class _Pass:
    values: list[float] | None = field(default_factory=list)  # None: done
    seconds: float = 0.0

    def result(self) -> float:
        """The median: robust to the odd sample of another load class."""
        return _median(sorted(self.values or ()))


@dataclass(slots=True)
class _Signal:
    info: TagInfo
    eq: _Equipment
    absolute: bool = False  # companions deviate in units, not relative
    ewma: float | None = None
    last_ts: datetime | None = None
    last_value: float = 0.0
    last_cs: ContextSample | None = None
    pending_since: datetime | None = None
    active: bool = False
    onset: datetime | None = None
    peak: float = 0.0
    fault: str | None = None  # the wear named when it fired
    fired_load: str | None = None  # the load class it fired in
    passes: dict[tuple, _Pass] = field(default_factory=dict)  # key -> learning pass
    dt_avg: float | None = None  # the usual time between samples
    # per load class: mean absolute innovation (sample minus filtered deviation) and count
    noise: dict[str | None, list[float]] = field(default_factory=dict)
    baselines: dict[tuple, _Baseline] = field(default_factory=dict)
    anchors: deque[tuple[datetime, float]] = field(
        default_factory=lambda: deque(maxlen=TREND_ANCHORS))
    next_anchor: datetime | None = None

    def restart(self, *, recheck: bool) -> None:
        self.ewma, self.last_ts, self.pending_since, self.next_anchor = None, None, None, None
        self.anchors.clear()
        if recheck:
            self.passes.clear()


@dataclass(slots=True)
class _Equipment:
    equipment_id: str | None
    state: int | None = None
    settled_from: datetime | None = None  # None: down (or never seen running)
    setpoints: dict[str, float] = field(default_factory=dict)
    recipe: str | None = None
    signals: list[_Signal] = field(default_factory=list)
    companion: _Signal | None = None

    @property
    def load(self) -> str | None:
        return LOAD_CLASS.get(self.state) if self.state is not None else None

    def key(self) -> tuple:
        return (self.recipe, tuple(sorted((k, round(v, 4)) for k, v in self.setpoints.items())),
                self.load)

    def all_signals(self) -> list[_Signal]:
        return self.signals + ([self.companion] if self.companion is not None else [])


class DeviationDetector:
    """One [[detectors]] entry of kind "deviation" over the signal tags it matched."""

    kind = "deviation"

    def __init__(self, detector_id: str, priority: Priority = "medium", *, reference: str,
                 threshold: float, hysteresis: float = 0.0, on_delay_s: float = 0.0,
                 settle_s: float | None = None, learn_s: float = LEARN_S,
                 tau_s: float = EWMA_TAU_S) -> None:
        if not threshold:
            raise ValueError("a deviation detector needs a non-zero threshold")
        self.detector_id = detector_id
        self.priority: Priority = priority
        self.reference = reference
        self.baseline = reference == "baseline"
        self.threshold = float(threshold)
        self.high = self.threshold > 0
        self.side = "hi" if self.high else "lo"
        self.hysteresis = float(hysteresis)
        self.on_delay_s = float(on_delay_s)
        self.settle_s = float(settle_s if settle_s is not None
                              else SWITCH_S if self.baseline else SETTLE_S)
        self.learn_s, self.tau_s = float(learn_s), float(tau_s)
        self._signals: dict[str, _Signal] = {}
        self._companions: dict[str, _Signal] = {}
        self._state_of: dict[str, _Equipment] = {}  # state tag -> equipment
        self._setpoint_of: dict[str, tuple[_Equipment, str]] = {}  # setpoint tag -> (eq, name)
        self._eqs: dict[str | None, _Equipment] = {}

    # ---------------------------------------------------------------- building

    def add_tags(self, signal: TagInfo, equipment_tags: list[TagInfo]) -> list[str]:
        """Watch ``signal`` with the state, setpoint (and companion) tags of its equipment;
        returns every tag id to route here, each once (empty: no reference to compare with)."""
        others = [t for t in equipment_tags if t.equipment_id == signal.equipment_id]
        state = next((t for t in others if t.name == "state" and t.kind == "state"), None)
        sps = [t for t in others if t.kind == "setpoint"]
        if state is None or signal.tag_id in self._signals:
            return []
        if not self.baseline and not any(t.name == self.reference for t in sps):
            return []
        eq = self._eqs.get(signal.equipment_id)
        if eq is None:
            eq = self._eqs[signal.equipment_id] = _Equipment(signal.equipment_id)
        sig = _Signal(signal, eq)
        eq.signals.append(sig)
        self._signals[signal.tag_id] = sig
        routes = [signal.tag_id]
        if state.tag_id not in self._state_of:
            self._state_of[state.tag_id] = eq
            routes.append(state.tag_id)
        for t in sps:
            if t.tag_id not in self._setpoint_of:
                self._setpoint_of[t.tag_id] = (eq, t.name)
                routes.append(t.tag_id)
        comp = COMPANION.get(signal.name)
        if self.baseline and self.high and comp is not None and eq.companion is None:
            ct = next((t for t in others if t.name == comp[0]), None)
            if ct is not None:
                eq.companion = self._companions[ct.tag_id] = _Signal(ct, eq, absolute=True)
                routes.append(ct.tag_id)
        return routes

    @property
    def tag_ids(self) -> list[str]:
        return list(self._signals)

    # ---------------------------------------------------------------- running

    def feed(self, cs: ContextSample) -> list[Detection] | None:
        sig = self._signals.get(cs.tag_id)
        if sig is not None:
            return self._on_signal(sig, cs)
        eq = self._state_of.get(cs.tag_id)
        if eq is not None:
            self._on_state(eq, cs)
            return None
        comp = self._companions.get(cs.tag_id)
        if comp is not None:
            self._on_signal(comp, cs)
            return None
        hit = self._setpoint_of.get(cs.tag_id)
        if hit is not None and cs.quality is Quality.GOOD and _number(cs.value):
            eq, name = hit
            v = float(cs.value)  # type: ignore[arg-type]
            if eq.setpoints.get(name) != v:
                eq.setpoints[name] = v
                self._resettle(eq, cs.source_ts, self.settle_s)
        return None

    def _on_state(self, eq: _Equipment, cs: ContextSample) -> None:
        if cs.quality is not Quality.GOOD or not _number(cs.value):
            return
        s = int(cs.value)  # type: ignore[arg-type]
        prev, prev_load = eq.state, eq.load
        eq.state = s
        if s == prev:
            return
        ts = cs.source_ts
        if s in DOWN_STATES or s not in LOAD_CLASS:
            eq.settled_from = None
            for sig in eq.all_signals():
                sig.restart(recheck=True)  # a repair may have changed the level: re-check it
        elif eq.settled_from is None:
            eq.settled_from = ts + timedelta(seconds=self.settle_s)
        elif self.baseline and eq.load != prev_load:
            switch = ts + timedelta(seconds=SWITCH_S)
            eq.settled_from = max(eq.settled_from, switch)
            for sig in eq.all_signals():
                sig.pending_since, sig.ewma = None, None
                sig.last_ts = None  # the other class's samples are not this one's history
                sig.anchors.clear()
                sig.next_anchor = None

    def _resettle(self, eq: _Equipment, ts: datetime, settle_s: float) -> None:
        if eq.settled_from is not None:
            eq.settled_from = ts + timedelta(seconds=settle_s)
        for sig in eq.all_signals():
            sig.restart(recheck=False)

    def _on_signal(self, sig: _Signal, cs: ContextSample) -> list[Detection] | None:
        if cs.quality is not Quality.GOOD or not _number(cs.value):
            sig.pending_since = None
            return None
        eq = sig.eq
        recipe = cs.ctx.recipe_id if cs.ctx is not None else None
        if recipe != eq.recipe:
            eq.recipe = recipe
            self._resettle(eq, cs.source_ts, self.settle_s)
        ts = cs.source_ts
        if eq.settled_from is None or ts < eq.settled_from:
            return None
        v = float(cs.value)  # type: ignore[arg-type]
        dt = (ts - sig.last_ts).total_seconds() if sig.last_ts is not None else None
        sig.last_ts, sig.last_value, sig.last_cs = ts, v, cs
        if sig.next_anchor is None or ts >= sig.next_anchor:
            sig.anchors.append((ts, v))
            sig.next_anchor = ts + TREND_STEP
        if dt is not None and 0 < dt <= MAX_GAP_S:
            sig.dt_avg = dt if sig.dt_avg is None else sig.dt_avg + 0.05 * (dt - sig.dt_avg)
        ref = self._reference(sig, eq, v, dt)
        if ref is None or (ref == 0 and not sig.absolute):
            return None
        dev = v - ref if sig.absolute else (v - ref) / abs(ref)
        if not sig.absolute and abs(dev) > REJECT:
            return None  # a sample from across a state change the state tag has not shown
        if sig.ewma is None or dt is None or dt > MAX_GAP_S:
            sig.ewma = dev
        elif dt > 0:
            nz = sig.noise.get(eq.load)
            inn = abs(dev - sig.ewma)
            if nz is None:
                sig.noise[eq.load] = [inn, 1.0]
            else:
                nz[0] += max(0.02, 1.0 / (nz[1] + 1.0)) * (inn - nz[0])
                nz[1] += 1.0
            sig.ewma += (1.0 - math.exp(-dt / self.tau_s)) * (dev - sig.ewma)
        if sig.absolute:
            return None
        return self._evaluate(sig, sig.ewma, ref, ts)

    def _noise(self, sig: _Signal) -> float | None:
        """The filtered deviation's own scatter (relative): the samples' scatter around it
        (measured in this load class; a fault's slow drift hardly moves it) through the
        EWMA at the usual sampling interval. None until enough samples were seen."""
        nz = sig.noise.get(sig.eq.load)
        if nz is None or nz[1] < NOISE_N:
            return None
        a = 1.0 - math.exp(-(sig.dt_avg or 1.0) / self.tau_s)
        return 1.25 * nz[0] * math.sqrt(a / (2.0 - a))  # mean |x| of a normal = 0.8 sigma

    def _reference(self, sig: _Signal, eq: _Equipment, v: float,
                   dt: float | None) -> float | None:
        if not self.baseline:
            return eq.setpoints.get(self.reference)
        key = eq.key()
        base = sig.baselines.get(key)
        acc = sig.passes.get(key)
        if acc is None:
            acc = sig.passes[key] = _Pass()
        if acc.values is not None:  # learning (or re-checking) this key's level
            acc.values.append(v)
            acc.seconds += min(dt, 120.0) if dt is not None and dt > 0 else 1.0
            if acc.seconds >= self.learn_s and len(acc.values) >= LEARN_N:
                mean = acc.result()
                acc.values = None
                if base is None:
                    base = sig.baselines[key] = _Baseline(mean)
                elif sig.absolute:
                    base.value = mean  # companions: the latest
                elif ((base.value - mean) if self.high else (mean - base.value)) \
                        > 0.5 * abs(self.threshold) * abs(base.value):
                    # clearly healthier than remembered (a repair, or a first pass that
                    # caught a worn or mixed level): towards healthy only, never noise
                    base.value = mean
        return base.value if base is not None else None

    def _evaluate(self, sig: _Signal, dev: float, ref: float,
                  ts: datetime) -> list[Detection] | None:
        thr = self.threshold
        if sig.active:
            if self.baseline and sig.eq.load != sig.fired_load:
                return None  # wear shows less at idle: only where it fired can it clear
            back = dev <= thr - self.hysteresis if self.high else dev >= thr + self.hysteresis
            if back:
                sig.active = False
                return [self._detection(sig, dev, ref, ts, cleared=True)]
            if (dev > sig.peak) if self.high else (dev < sig.peak):
                sig.peak = dev
            return None
        noise = self._noise(sig)
        if not (dev > thr if self.high else dev < thr) or noise is None \
                or abs(dev) < Z_MIN * noise:
            sig.pending_since = None
            return None
        if sig.pending_since is None:
            sig.pending_since = ts
        if (ts - sig.pending_since).total_seconds() < self.on_delay_s:
            return None
        sig.active, sig.onset, sig.peak = True, sig.pending_since, dev
        sig.fired_load = sig.eq.load
        sig.pending_since = None
        return [self._detection(sig, dev, ref, ts, cleared=False)]

    def tick(self, now: datetime) -> list[Detection]:
        """Nothing is timed: a deviation is measured on samples (kept for symmetry)."""
        return []

    # ---------------------------------------------------------------- output

    def _fault(self, sig: _Signal) -> tuple[str | None, dict[str, Any] | None]:
        """The wear this points at, and the companion's evidence when it changed the answer."""
        fault = FAULT_HINT.get((sig.info.name, self.side))
        comp, spec = sig.eq.companion, COMPANION.get(sig.info.name)
        if comp is None or spec is None or comp.ewma is None:
            return fault, None
        base = comp.baselines.get(sig.eq.key())
        item = {"signal": comp.info.name, "unit": comp.info.unit,
                "value": round(comp.last_value, 4), "quality": "good",
                "reference": "its baseline for this recipe"}
        if base is not None:
            item["baseline"] = round(base.value, 4)
        if comp.ewma > spec[1]:
            return spec[2], item
        return fault, item

    def _detection(self, sig: _Signal, dev: float, ref: float, ts: datetime, *,
                   cleared: bool) -> Detection:
        info = sig.info
        value = ref * (1.0 + dev)  # the filtered level, in the signal's unit
        ref_words = ("its baseline for this recipe" if self.baseline
                     else f"its setpoint {self.reference.replace('_', ' ')}")
        if cleared:
            fault, comp_item = sig.fault, None
        else:
            fault, comp_item = self._fault(sig)
            sig.fault = fault
        onset = sig.onset or ts
        if cleared:
            summary = (f"{info.label} back to {fmt(value, info.unit)}, within "
                       f"{abs(self.threshold):.0%} of {ref_words} {fmt(ref, info.unit)} "
                       f"(worst {sig.peak:+.1%})")
        else:
            summary = (f"{info.label} {fmt(value, info.unit)} is {dev:+.1%} "
                       f"{'above' if dev > 0 else 'below'} {ref_words} "
                       f"{fmt(ref, info.unit)} (allowed {abs(self.threshold):.0%})")
        trend = _trend(sig, ts)
        if trend is not None and not cleared and abs(trend[0]) > 1e-9:
            summary += (f"; {'rising' if trend[0] > 0 else 'falling'} "
                        f"{fmt(abs(trend[0]), info.unit)}/h over {trend[1]:.0f} min")
        if fault and not cleared:
            summary += f": points at {fault} wear"
            if comp_item is not None and fault != FAULT_HINT.get((info.name, self.side)):
                summary += f" ({comp_item['signal'].replace('_', ' ')} is up too)"
        cs = sig.last_cs
        signals = [{"signal": info.name, "value": round(value, 4), "baseline": round(ref, 4),
                    "unit": info.unit, "reference": ref_words,
                    "slope_per_h": trend[0] if trend else None,
                    "window_h": trend[1] / 60 if trend else None, "quality": "good"}]
        if comp_item is not None:
            signals.append(comp_item)
        evidence: dict[str, Any] = {
            "reference": "baseline" if self.baseline else self.reference,
            "side": self.side, "deviation": round(dev, 5), "threshold": self.threshold,
            "hysteresis": self.hysteresis, "on_delay_s": self.on_delay_s,
            "duration_s": (ts - onset).total_seconds(), "unit": info.unit,
            "load": sig.eq.load, "signals": signals,
        }
        if fault:
            evidence["fault_mode"] = fault
            evidence["expected_downtime_h"] = EXPECTED_DOWNTIME_H
        return Detection(
            kind="deviation", detector_id=self.detector_id,
            problem_key=f"deviation:{info.tag_id}:{self.side}", priority=self.priority,
            onset=onset, ts=ts, summary=summary, equipment_id=info.equipment_id,
            line_id=info.line_id, tag_id=info.tag_id, value=round(value, 4),
            limit=round(ref * (1.0 + self.threshold), 4),
            values={"reference": round(ref, 4), "deviation": round(dev, 5),
                    "peak": round(sig.peak, 5)},
            context=context_ids(cs.ctx) if cs is not None else {},
            evidence=evidence, cleared=cleared)


def _median(xs: list[float]) -> float:
    n = len(xs)
    if not n:
        return 0.0
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def _number(v: object) -> bool:
    return type(v) in (float, int) and math.isfinite(v)  # type: ignore[arg-type]


def _trend(sig: _Signal, ts: datetime) -> tuple[float, float] | None:
    """Rate per hour of the raw signal from the oldest anchor (up to two hours back)."""
    if not sig.anchors:
        return None
    t0, v0 = sig.anchors[0]
    span = (ts - t0).total_seconds()
    if span < 600:
        return None
    return (sig.last_value - v0) / span * 3600, span / 60
