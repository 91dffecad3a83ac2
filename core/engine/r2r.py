"""Run-to-run correction: re-centre a shifted characteristic with one recipe setpoint.

When SPC sees the process mean move (Nelson rules 2 and 3: a run on one side, a
trend) the useful answer is often not to stop the line but to put the mean
back on target. The size of the correction comes from the setpoint's *effect* on the
characteristic: the process engineers' figure from master data, refined by what each
executed correction actually did (``learn``). The correction stays inside the recipe's
limits and moves a setpoint by at most half of its half-range at a time.

The shift is *not* the mean of the points that made the rule fire: nine points chosen
because they all lie above the centre average about 0.8σ above it even when nothing
moved, and correcting that is tampering (each move adds a real offset the next false
run then "corrects"). It is the mean of this machine's measurements of the
characteristic since its last setpoint change (at most ``WINDOW``), and it must stand
out of their noise (``SIGNIFICANCE`` standard errors) as well as exceed half a sigma.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from statistics import fmean
from typing import Any

from sqlalchemy import select

from core import history
from core.store.db import Store, guard
from core.store.models import (
    Action,
    Meta,
    QualityCharacteristic,
    QualityMeasurement,
    RecipeSetpoint,
)

EFFECT_PREFIX = "r2r.effect."  # engineers' figure (master data), per recipe setpoint id
LEARNED_PREFIX = "r2r.learned."  # refined from executed corrections
MAX_STEP = 0.5  # of the half-range, per correction
SHIFT_RULES = (2, 3)  # the Nelson rules that say the mean moved (a run, a trend)
WINDOW = 30  # newest measurements the shift is estimated from
MIN_POINTS = 10  # fewer since the last change: wait for more before moving again
SIGNIFICANCE = 3.0  # standard errors the estimated shift must exceed
META = Meta.__table__  # type: ignore[attr-defined]
QM = QualityMeasurement.__table__  # type: ignore[attr-defined]
ACT = Action.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Correction:
    name: str
    current: float
    target: float
    effect: float
    source: str  # "engineers" | "learned"
    shift: float  # characteristic − target before the correction
    expected_after: float  # predicted shift after it
    sigma: float

    def as_evidence(self) -> dict[str, Any]:
        return {"name": self.name, "current": self.current, "target": self.target,
                "effect": self.effect, "effect_source": self.source,
                "shift": round(self.shift, 6), "expected_shift_after":
                round(self.expected_after, 6), "sigma": self.sigma}


def effects(store: Store, recipe_id: str, equipment_type: str) -> dict[str, tuple[float, str]]:
    """Setpoint name → (effect per unit, where the figure comes from); learned wins."""
    stem = f"{recipe_id}.{equipment_type}."
    out: dict[str, tuple[float, str]] = {}
    with guard(store), store.engine.connect() as conn:
        for prefix, source in ((EFFECT_PREFIX, "engineers"), (LEARNED_PREFIX, "learned")):
            for key, value in conn.execute(select(META.c.key, META.c.value).where(
                    META.c.key.like(prefix + stem + "%"))).all():
                try:
                    eff = float(value)
                except ValueError:
                    continue
                if math.isfinite(eff) and eff != 0.0:
                    out[key.removeprefix(prefix + stem)] = (eff, source)
    return out


def current_setpoint(store: Store, equipment_id: str, name: str) -> float | None:
    """The newest Good value the machine reported for this setpoint."""
    with guard(store), store.engine.connect() as conn:
        tag = f"{equipment_id}.{name}"
        pts = history.latest(conn, [tag], 1, good_only=True).get(tag)
    return float(pts[-1][1]) if pts and pts[-1][1] is not None else None


def last_change(store: Store, equipment_id: str, until: datetime) -> datetime | None:
    """When a setpoint of this machine was last written by the loop (done), or None."""
    with guard(store), store.engine.connect() as conn:
        row = conn.execute(select(ACT.c.finished_at).where(
            ACT.c.kind == "write_setpoint", ACT.c.status == "done",
            ACT.c.params.like(f'%"equipment_id": "{equipment_id}"%'),
            ACT.c.finished_at <= until).order_by(ACT.c.finished_at.desc()).limit(1)).first()
    return row[0] if row is not None else None


def recent_points(store: Store, equipment_id: str, characteristic: str,
                  until: datetime) -> list[float] | None:
    """This machine's newest measurements of the characteristic since its last setpoint
    change (oldest first); None when the store has none at all (the rule's own points
    are then all there is)."""
    since = last_change(store, equipment_id, until)
    q = select(QM.c.value, QM.c.ts).where(
        QM.c.characteristic_id == characteristic, QM.c.equipment_id == equipment_id,
        QM.c.ts <= until)
    with guard(store), store.engine.connect() as conn:
        rows = conn.execute(q.order_by(QM.c.ts.desc()).limit(WINDOW)).all()
    if not rows:
        return None
    if since is not None:
        cut = since.replace(tzinfo=None) if rows[0].ts.tzinfo is None else since
        rows = [r for r in rows if r.ts > cut]
    return [float(r.value) for r in reversed(rows)]


def propose(store: Store, *, equipment_id: str, recipe_id: str, equipment_type: str,
            characteristic: str | None, points: list[float], centre: float | None,
            sigma: float | None, at: datetime | None = None) -> Correction | None:
    """The setpoint move that best puts the recent mean back on target, or None."""
    if not sigma or sigma <= 0:
        return None
    if characteristic and at is not None:
        recent = recent_points(store, equipment_id, characteristic, at)
        if recent is not None:
            if len(recent) < MIN_POINTS:
                return None  # too soon after the last change to tell where the mean is
            points = recent
    if len(points) < 3:
        return None
    target = centre
    if characteristic:
        with guard(store), store.session() as s:
            ch = s.get(QualityCharacteristic, characteristic)
        if ch is not None:
            target = ch.target
    if target is None:
        return None
    shift = fmean(points) - target
    if abs(shift) < max(0.5 * sigma, SIGNIFICANCE * sigma / math.sqrt(len(points))):
        return None  # within noise of the target: nothing to correct
    cands: list[Correction] = []
    t = RecipeSetpoint.__table__  # type: ignore[attr-defined]
    with guard(store), store.engine.connect() as conn:
        rows = {r.name: r for r in conn.execute(select(t).where(
            t.c.recipe_id == recipe_id, t.c.equipment_type == equipment_type)).all()}
    for name, (eff, source) in sorted(effects(store, recipe_id, equipment_type).items()):
        row = rows.get(name)
        if row is None:
            continue
        cur = current_setpoint(store, equipment_id, name)
        cur = row.value if cur is None else cur
        step_max = MAX_STEP * (row.hi - row.lo) / 2
        want = cur - shift / eff
        value = min(max(want, cur - step_max, row.lo), cur + step_max, row.hi)
        value = float(f"{value:.6g}")
        if value == cur:
            continue
        after = shift + (value - cur) * eff
        cands.append(Correction(name, cur, value, eff, source, shift, after, sigma))
    return choose(cands, shift)


def rate_loss(c: Correction) -> float:
    """Share of the machine's rate a correction gives up: a speed setpoint (rpm, strokes
    or screw speed — any setpoint named *speed*) sets the cycle time; lowering it by x %
    makes every unit take that much longer. Other setpoints (feed, temperature,
    pressure) leave the cycle alone."""
    if "speed" not in c.name or c.current <= 0 or c.target >= c.current:
        return 0.0
    return 1.0 - c.target / c.current


def choose(cands: list[Correction], shift: float) -> Correction | None:
    """The correction a plant manager would pick: among those that take out at least
    half of the shift, the one that costs the least rate, then the most exact; when
    none does, the most exact one that takes out a quarter; else none (people decide:
    hold, inspect)."""
    good = [c for c in cands if abs(c.expected_after) <= 0.5 * abs(shift)]
    if good:
        return min(good, key=lambda c: (round(rate_loss(c), 4), abs(c.expected_after)))
    ok = [c for c in cands if abs(c.expected_after) <= 0.75 * abs(shift)]
    return min(ok, key=lambda c: (abs(c.expected_after), rate_loss(c))) if ok else None


def out_of_spec_share(mean: float, sigma: float, lsl: float, usl: float) -> float:
    """Share of units outside the spec for a normal process (for expected impact)."""
    def phi(z: float) -> float:
        return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
    return phi((lsl - mean) / sigma) + 1.0 - phi((usl - mean) / sigma)


def learn_effect(store: Store, recipe_id: str, equipment_type: str, name: str,
                 observed: float, at: datetime | None = None) -> float | None:
    """Blend what a correction did into the figure the next one uses.

    Only a measurement with the expected sign counts (a batch change during the window
    can flip it); the new figure moves halfway toward it and stays within ¼×–4× of
    the engineers' figure, so one noisy window cannot wreck the controller.
    """
    effs = effects(store, recipe_id, equipment_type)
    if name not in effs or not math.isfinite(observed) or observed == 0.0:
        return None
    prior = effs[name][0]
    with guard(store), store.engine.connect() as conn:
        eng = conn.execute(select(META.c.value).where(
            META.c.key == f"{EFFECT_PREFIX}{recipe_id}.{equipment_type}.{name}")).first()
    base = float(eng[0]) if eng else prior
    if (observed > 0) != (base > 0):
        return None
    new = 0.5 * prior + 0.5 * observed
    lo, hi = sorted((abs(base) / 4, abs(base) * 4))
    new = math.copysign(min(max(abs(new), lo), hi), base)
    store.set_meta(f"{LEARNED_PREFIX}{recipe_id}.{equipment_type}.{name}", repr(new))
    return new
