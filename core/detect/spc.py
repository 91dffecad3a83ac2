"""Statistical process control: individuals and X̄/R charts with the Nelson rules 1–8.

Limits come from a baseline period: centre = mean, σ = mean moving range / d2
(individuals; d2 = 1.128 for ranges of two) or R̄ / d2(n) (subgroups), because σ
from the moving range ignores slow drift inside the baseline that the plain standard
deviation would absorb. A rule is reported when it starts to hold and again, as
cleared, once it has not held for as many points as its own window, so one excursion
is one detection and not one per point.

Rules (Nelson 1984), with z = (x - centre) / σ:
  1 one point beyond 3σ              5 two of three beyond 2σ, same side
  2 nine in a row on one side        6 four of five beyond 1σ, same side
  3 six in a row rising or falling   7 fifteen in a row within 1σ (either side)
  4 fourteen in a row alternating    8 eight in a row beyond 1σ, on both sides
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.detect.events import Detection, Priority, context_ids, escalate
from core.samples import Context, ContextSample, Quality

RULES: dict[int, str] = {
    1: "one point beyond 3σ",
    2: "nine points in a row on one side of the centre line",
    3: "six points in a row steadily rising or falling",
    4: "fourteen points in a row alternating up and down",
    5: "two of three points beyond 2σ on the same side",
    6: "four of five points beyond 1σ on the same side",
    7: "fifteen points in a row within 1σ (stratification)",
    8: "eight points in a row beyond 1σ on both sides (mixture)",
}
WINDOW = {1: 1, 2: 9, 3: 6, 4: 14, 5: 3, 6: 5, 7: 15, 8: 8}
# d2, A2, D3, D4 for subgroup sizes 2..10 (ASTM / Montgomery tables)
D2 = {2: 1.128, 3: 1.693, 4: 2.059, 5: 2.326, 6: 2.534, 7: 2.704, 8: 2.847, 9: 2.970,
      10: 3.078}
D3 = {2: 0.0, 3: 0.0, 4: 0.0, 5: 0.0, 6: 0.0, 7: 0.076, 8: 0.136, 9: 0.184, 10: 0.223}
D4 = {2: 3.267, 3: 2.574, 4: 2.282, 5: 2.114, 6: 2.004, 7: 1.924, 8: 1.864, 9: 1.816,
      10: 1.777}


class SpcError(ValueError):
    """A baseline that cannot give control limits; the message says why."""


@dataclass(frozen=True, slots=True)
class ControlLimits:
    centre: float
    sigma: float  # of the plotted statistic (individual value or subgroup mean)

    @property
    def ucl(self) -> float:
        return self.centre + 3 * self.sigma

    @property
    def lcl(self) -> float:
        return self.centre - 3 * self.sigma


def individuals_limits(baseline: Sequence[float]) -> ControlLimits:
    """Mean ± 3σ with σ = mean moving range / 1.128."""
    xs = [float(x) for x in baseline if x is not None and math.isfinite(x)]
    if len(xs) < 2:
        raise SpcError(f"an individuals baseline needs at least 2 values, got {len(xs)}")
    mr = statistics.fmean(abs(b - a) for a, b in itertools.pairwise(xs))
    sigma = mr / D2[2]
    if sigma <= 0:
        raise SpcError("the baseline does not vary (moving range 0): no σ to chart against")
    return ControlLimits(statistics.fmean(xs), sigma)


@dataclass(frozen=True, slots=True)
class XbarRLimits:
    n: int
    xbar: ControlLimits  # σ here is σ of the subgroup mean
    r_centre: float
    r_lcl: float
    r_ucl: float


def xbar_r_limits(subgroups: Sequence[Sequence[float]]) -> XbarRLimits:
    """X̿ ± A2·R̄ (as σ_x̄ = R̄/(d2·√n)) and R chart D3·R̄ .. D4·R̄."""
    groups = [list(map(float, g)) for g in subgroups if g]
    if len(groups) < 2:
        raise SpcError(f"an X̄/R baseline needs at least 2 subgroups, got {len(groups)}")
    sizes = {len(g) for g in groups}
    if len(sizes) != 1 or (n := sizes.pop()) not in D2:
        raise SpcError("X̄/R subgroups must all have the same size, between 2 and 10")
    rbar = statistics.fmean(max(g) - min(g) for g in groups)
    if rbar <= 0:
        raise SpcError("the baseline subgroups do not vary (R̄ = 0)")
    centre = statistics.fmean(statistics.fmean(g) for g in groups)
    sigma_xbar = rbar / (D2[n] * math.sqrt(n))
    return XbarRLimits(n, ControlLimits(centre, sigma_xbar), rbar, D3[n] * rbar, D4[n] * rbar)


class NelsonRules:
    """Streaming rule evaluation over z-scores; ``add`` returns (started, ended) rule numbers."""

    __slots__ = ("_clear_after", "_quiet", "_z", "active", "enabled")

    def __init__(self, enabled: Iterable[int] = range(1, 9)) -> None:
        self.enabled = tuple(sorted(set(enabled)))
        bad = [r for r in self.enabled if r not in RULES]
        if bad:
            raise SpcError(f"unknown Nelson rule(s) {bad}: rules are 1..8")
        self._z: deque[float] = deque(maxlen=15)
        self.active: set[int] = set()
        self._quiet: dict[int, int] = {}
        self._clear_after = {r: max(3, WINDOW[r]) for r in RULES}

    def holding(self) -> set[int]:
        """The rules that hold at the latest point."""
        z = list(self._z)
        n = len(z)
        out: set[int] = set()
        if not n:
            return out
        en = self.enabled
        if 1 in en and abs(z[-1]) > 3:
            out.add(1)
        if 2 in en and n >= 9:
            w = z[-9:]
            if all(x > 0 for x in w) or all(x < 0 for x in w):
                out.add(2)
        if 3 in en and n >= 6:
            w = z[-6:]
            d = [b - a for a, b in itertools.pairwise(w)]
            if all(x > 0 for x in d) or all(x < 0 for x in d):
                out.add(3)
        if 4 in en and n >= 14:
            w = z[-14:]
            d = [b - a for a, b in itertools.pairwise(w)]
            if all(x != 0 for x in d) and all((a > 0) != (b > 0)
                                              for a, b in itertools.pairwise(d)):
                out.add(4)
        if 5 in en and n >= 3:
            w = z[-3:]
            if sum(x > 2 for x in w) >= 2 or sum(x < -2 for x in w) >= 2:
                out.add(5)
        if 6 in en and n >= 5:
            w = z[-5:]
            if sum(x > 1 for x in w) >= 4 or sum(x < -1 for x in w) >= 4:
                out.add(6)
        if 7 in en and n >= 15 and all(abs(x) < 1 for x in z[-15:]):
            out.add(7)
        if 8 in en and n >= 8:
            w = z[-8:]
            if all(abs(x) > 1 for x in w) and any(x > 0 for x in w) and any(x < 0 for x in w):
                out.add(8)
        return out

    def add(self, z: float) -> tuple[list[int], list[int]]:
        self._z.append(z)
        now = self.holding()
        started = sorted(now - self.active)
        ended: list[int] = []
        for r in started:
            self.active.add(r)
            self._quiet[r] = 0
        for r in sorted(self.active - now):
            self._quiet[r] = self._quiet.get(r, 0) + 1
            if self._quiet[r] >= self._clear_after[r]:
                self.active.discard(r)
                ended.append(r)
        for r in now & self.active:
            self._quiet[r] = 0
        return started, ended


@dataclass
class _Point:
    ts: datetime
    value: float


class SpcChart:
    """One characteristic on one piece of equipment: baseline, limits, rules, detections.

    Without limits the first ``baseline_n`` Good values form the baseline (100: with
    25 the moving-range σ is off by 15 % often enough to double the false alarms); give
    ``limits`` to chart against a baseline period chosen elsewhere (e.g. from the store).
    """

    def __init__(self, detector_id: str, characteristic: str, *,
                 equipment_id: str | None = None, line_id: str | None = None,
                 tag_id: str | None = None, unit: str = "",
                 limits: ControlLimits | None = None, baseline_n: int = 100,
                 rules: Iterable[int] = range(1, 9), priority: Priority = "medium",
                 chart: str = "individuals") -> None:
        if baseline_n < 2:
            raise SpcError("baseline_n must be at least 2")
        self.detector_id = detector_id
        self.characteristic = characteristic
        self.equipment_id, self.line_id, self.tag_id = equipment_id, line_id, tag_id
        self.unit = unit
        self.limits = limits
        self.baseline_n = baseline_n
        self.priority: Priority = priority
        self.chart = chart
        self.rules = NelsonRules(rules)
        self._baseline: list[float] = []
        self._onset: dict[int, datetime] = {}
        self._recent: deque[_Point] = deque(maxlen=15)
        self.points = 0

    def _key(self, rule: int) -> str:
        where = f":{self.equipment_id}" if self.equipment_id else ""
        return f"spc:{self.characteristic}{where}:rule{rule}"

    def add(self, value: float, ts: datetime, ctx: Context | None = None) -> list[Detection]:
        """Chart one value (an individual or a subgroup mean)."""
        if self.limits is None:
            self._baseline.append(float(value))
            if len(self._baseline) >= self.baseline_n:
                try:
                    self.limits = individuals_limits(self._baseline)
                except SpcError:  # a flat baseline: keep collecting until it varies
                    self._baseline = self._baseline[-self.baseline_n:]
            return []
        lim = self.limits
        self.points += 1
        self._recent.append(_Point(ts, float(value)))
        started, ended = self.rules.add((float(value) - lim.centre) / lim.sigma)
        out: list[Detection] = []
        for r in started:
            self._onset[r] = self._recent[-min(WINDOW[r], len(self._recent))].ts
            out.append(self._detection(r, float(value), ts, ctx, cleared=False))
        for r in ended:
            out.append(self._detection(r, float(value), ts, ctx, cleared=True))
            self._onset.pop(r, None)
        return out

    def _detection(self, rule: int, value: float, ts: datetime, ctx: Context | None, *,
                   cleared: bool) -> Detection:
        lim = self.limits
        assert lim is not None
        where = f" on {self.equipment_id}" if self.equipment_id else ""
        if cleared:
            summary = f"{self.characteristic}{where} back in control (Nelson rule {rule} over)"
        else:
            summary = (f"{self.characteristic}{where} out of control: {RULES[rule]} "
                       f"(Nelson rule {rule}); latest {value:.4g} {self.unit}, centre "
                       f"{lim.centre:.4g}, limits {lim.lcl:.4g}..{lim.ucl:.4g}").rstrip()
        return Detection(
            kind="spc", detector_id=self.detector_id, problem_key=self._key(rule),
            priority=escalate(self.priority) if rule == 1 else self.priority,
            onset=self._onset.get(rule, ts), ts=ts, summary=summary,
            equipment_id=self.equipment_id, line_id=self.line_id, tag_id=self.tag_id,
            value=value, limit=lim.ucl if value >= lim.centre else lim.lcl,
            values={"centre": lim.centre, "sigma": lim.sigma, "ucl": lim.ucl, "lcl": lim.lcl},
            context=context_ids(ctx),
            evidence={"rule": rule, "rule_text": RULES[rule], "chart": self.chart,
                      "characteristic": self.characteristic,
                      "points": [[p.ts.isoformat(), p.value] for p in
                                 list(self._recent)[-WINDOW[rule]:]]},
            cleared=cleared,
        )


class XbarRChart:
    """Subgroups of n consecutive values: rules on X̄, rule 1 also on the range R."""

    def __init__(self, detector_id: str, characteristic: str, limits: XbarRLimits, **kw: object
                 ) -> None:
        self.n = limits.n
        self.limits = limits
        self.xbar = SpcChart(detector_id, characteristic, limits=limits.xbar,
                             chart="xbar", **kw)  # type: ignore[arg-type]
        self._group: list[float] = []

    def add(self, value: float, ts: datetime, ctx: Context | None = None) -> list[Detection]:
        self._group.append(float(value))
        if len(self._group) < self.n:
            return []
        g, self._group = self._group, []
        out = self.xbar.add(statistics.fmean(g), ts, ctx)
        r = max(g) - min(g)
        if r > self.limits.r_ucl or r < self.limits.r_lcl:
            c = self.xbar
            out.append(Detection(
                kind="spc", detector_id=c.detector_id,
                problem_key=f"spc:{c.characteristic}"
                            f"{':' + c.equipment_id if c.equipment_id else ''}:range",
                priority=c.priority, onset=ts, summary=(
                    f"{c.characteristic} subgroup range {r:.4g} outside R chart limits "
                    f"{self.limits.r_lcl:.4g}..{self.limits.r_ucl:.4g}"),
                equipment_id=c.equipment_id, line_id=c.line_id, tag_id=c.tag_id, value=r,
                limit=self.limits.r_ucl, context=context_ids(ctx),
                evidence={"chart": "R", "subgroup": g}))
        return out


class SpcDetector:
    """One chart per characteristic and equipment, fed by quality tags or store measurements.

    A quality tag carries whatever product is running, so its chart is chosen by the
    sample's recipe: ``characteristic_of`` maps a recipe id to the characteristic it
    measures (``characteristics_from_store``), else the chart is "<tag name>[<recipe>]".
    A changeover thus switches charts instead of looking like a shift. Feed either the
    tag stream or the store's measurements of the same gauge, not both.

    A quality tag holds the last part's measurement until the next part, and a
    polled driver reads it again every scan: a value equal to the previous one is
    taken as the same measurement, so repeats neither shrink σ nor fake a run.
    """

    kind = "spc"

    def __init__(self, detector_id: str, priority: Priority = "medium", *,
                 baseline_n: int = 100, characteristic: str | None = None,
                 characteristic_of: Mapping[str, str] | None = None,
                 rules: Iterable[int] = range(1, 9)) -> None:
        self.detector_id = detector_id
        self.rules = tuple(rules)
        self.priority: Priority = priority
        self.baseline_n = baseline_n
        self.characteristic = characteristic
        self.characteristic_of = dict(characteristic_of or {})
        self.charts: dict[str, SpcChart] = {}
        self._tag_meta: dict[str, tuple[str, str | None, str | None, str]] = {}
        self._last: dict[str, float] = {}

    def add_tag(self, tag_id: str, equipment_id: str | None, line_id: str | None,
                unit: str = "") -> bool:
        self._tag_meta[tag_id] = (tag_id.rsplit(".", 1)[-1], equipment_id, line_id, unit)
        return True

    def set_limits(self, characteristic: str, limits: ControlLimits,
                   equipment_id: str | None = None, line_id: str | None = None) -> None:
        """Chart a characteristic on one equipment against fixed limits (a baseline
        period chosen elsewhere, e.g. ``baseline_from_store``)."""
        self.chart(characteristic, equipment_id, line_id).limits = limits

    def chart(self, characteristic: str, equipment_id: str | None = None,
              line_id: str | None = None, tag_id: str | None = None, unit: str = ""
              ) -> SpcChart:
        key = f"{characteristic}@{equipment_id}" if equipment_id else characteristic
        ch = self.charts.get(key)
        if ch is None:
            ch = SpcChart(self.detector_id, characteristic, equipment_id=equipment_id,
                          line_id=line_id, tag_id=tag_id, unit=unit,
                          baseline_n=self.baseline_n, priority=self.priority,
                          rules=self.rules)
            self.charts[key] = ch
        return ch

    def characteristic_for(self, tag_name: str, recipe_id: str | None) -> str:
        if self.characteristic:
            return self.characteristic
        if recipe_id is None:
            return tag_name
        return self.characteristic_of.get(recipe_id) or f"{tag_name}[{recipe_id}]"

    def feed(self, cs: ContextSample) -> list[Detection] | None:
        meta = self._tag_meta.get(cs.tag_id)
        if meta is None or cs.quality is not Quality.GOOD:
            return None
        v = cs.value
        if type(v) is not float and type(v) is not int:
            return None
        if self._last.get(cs.tag_id) == v:
            return None  # the same measurement read again (polling), not a new part
        self._last[cs.tag_id] = v  # type: ignore[assignment]
        name, eq, line, unit = meta
        ch = self.chart(self.characteristic_for(name, cs.ctx.recipe_id), eq, line,
                        cs.tag_id, unit)
        return ch.add(float(v), cs.source_ts, cs.ctx) or None  # type: ignore[arg-type]

    def feed_measurement(self, characteristic_id: str, value: float, ts: datetime,
                         equipment_id: str | None = None, line_id: str | None = None,
                         ctx: Context | None = None) -> list[Detection]:
        """A QualityMeasurement row from the store (lab or gauge), charted per equipment."""
        return self.chart(characteristic_id, equipment_id, line_id).add(float(value), ts, ctx)


def characteristics_from_store(store: object) -> dict[str, str]:
    """Recipe id -> the id of the characteristic its product is measured on."""
    from sqlalchemy import select

    from core.store.models import QualityCharacteristic, Recipe

    rt = Recipe.__table__  # type: ignore[attr-defined]
    qt = QualityCharacteristic.__table__  # type: ignore[attr-defined]
    out: dict[str, str] = {}
    with store.engine.connect() as c:  # type: ignore[attr-defined]
        for r in c.execute(select(rt.c.id, qt.c.id.label("qc"))
                           .join(qt, qt.c.product_id == rt.c.product_id)
                           .order_by(rt.c.id, qt.c.id)):
            out.setdefault(r.id, r.qc)
    return out


def baseline_from_store(store: object, characteristic_id: str, start: datetime, end: datetime,
                        equipment_id: str | None = None) -> ControlLimits:
    """Individuals limits from the QualityMeasurement rows of a baseline period."""
    from sqlalchemy import select

    from core.store.models import QualityMeasurement

    qm = QualityMeasurement.__table__  # type: ignore[attr-defined]
    q = (select(qm.c.value).where(qm.c.characteristic_id == characteristic_id,
                                  qm.c.ts >= start, qm.c.ts < end).order_by(qm.c.ts))
    if equipment_id is not None:
        q = q.where(qm.c.equipment_id == equipment_id)
    with store.engine.connect() as c:  # type: ignore[attr-defined]
        values = [float(r.value) for r in c.execute(q)]
    try:
        return individuals_limits(values)
    except SpcError as e:
        raise SpcError(f"{characteristic_id} baseline {start:%Y-%m-%d %H:%M}.."
                       f"{end:%Y-%m-%d %H:%M}: {e}") from e
