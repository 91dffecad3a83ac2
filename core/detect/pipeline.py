"""``DetectorSet``: the [[detectors]] of the config, routed per tag with one dict lookup.

Routing is resolved once at build time (glob patterns against every configured tag
id), so the per-sample cost is a dict lookup plus the handlers of that tag, each of
which returns at once in the common case (a value inside its band, an unchanged
state). Timers (on-delays, stale tags, micro-stop windows) run in ``tick``; ML scores
in ``poll_scores``; material projections in ``check_material`` — each at its own
cadence, never per sample.

Bad and Uncertain samples reach the limit and SPC handlers, which ignore them, and
the bad-data tracker, which reports long runs; a tag with a limit but no stale
detector still gets an implicit bad-data tracker ("bad_data").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from fnmatch import fnmatchcase

from core.clock import Clock
from core.config.loader import LoadedConfig
from core.config.schema import Detector
from core.detect.deviation import DeviationDetector
from core.detect.events import Detection
from core.detect.limits import LimitDetector
from core.detect.material import MaterialDetector, line_side_inputs
from core.detect.ml_score import MlScoreDetector, ScoreSource
from core.detect.spc import SpcDetector
from core.detect.stale import StaleDetector
from core.detect.state import StateDetector
from core.detect.tags import TagInfo, tag_infos
from core.samples import ContextSample

Handler = Callable[[ContextSample], "list[Detection] | None"]
STALE_KINDS = ("signal",)  # tags that carry noise and so update while healthy
NUMERIC = ("float32", "float64", "int16", "uint16", "int32", "uint32", "int64")


def matches(patterns: Iterable[str], tag_id: str) -> bool:
    return any(fnmatchcase(tag_id, p) for p in patterns)


class DetectorSet:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.detectors: list[object] = []
        self.timed: list[LimitDetector | StateDetector | StaleDetector] = []
        self.ml: list[MlScoreDetector] = []
        self.material: list[MaterialDetector] = []
        self._route: dict[str, list[Handler]] = {}
        self._names: dict[str, list[str]] = {}
        self.spc_rules: tuple[int, ...] = tuple(range(1, 9))

    # ---------------------------------------------------------------- building

    def _add_route(self, tag_id: str, handler: Handler, detector_id: str) -> None:
        self._route.setdefault(tag_id, []).append(handler)
        self._names.setdefault(tag_id, []).append(detector_id)

    @classmethod
    def from_config(cls, cfg: LoadedConfig, clock: Clock, *,
                    score_sources: Mapping[str, ScoreSource] | None = None,
                    stale_kinds: Iterable[str] = STALE_KINDS,
                    characteristics: Mapping[str, str] | None = None,
                    spc_rules: Iterable[int] = range(1, 9)) -> DetectorSet:
        """``characteristics``: recipe -> quality characteristic id for SPC charts
        (``core.detect.spc.characteristics_from_store``); ``spc_rules``: the Nelson rules
        charts test (all eight by default)."""
        ds = cls(clock)
        ds.spc_rules = tuple(spc_rules)
        infos = tag_infos(cfg)
        ds.build(cfg.config.detectors, infos.values(), score_sources or {}, tuple(stale_kinds),
                 characteristics)
        return ds

    def build(self, detectors: Iterable[Detector], tags: Iterable[TagInfo],
              score_sources: Mapping[str, ScoreSource],
              stale_kinds: tuple[str, ...] = STALE_KINDS,
              characteristics: Mapping[str, str] | None = None) -> None:
        tags = list(tags)
        bad_data_covered: set[str] = set()
        needs_bad_data: list[TagInfo] = []
        for d in detectors:
            if not d.enabled:
                continue
            matched = [t for t in tags if d.tags and matches(d.tags, t.tag_id)]
            if d.kind == "limit":
                lim = LimitDetector(d.id, d.priority, hysteresis=d.hysteresis,
                                    on_delay_s=d.on_delay_s, threshold=d.threshold)
                for t in matched:
                    if lim.add_tag(t):
                        self._add_route(t.tag_id, lim.feed, d.id)
                        needs_bad_data.append(t)
                self.detectors.append(lim)
                self.timed.append(lim)
            elif d.kind == "deviation":
                dev = DeviationDetector(d.id, d.priority, reference=d.reference or "baseline",
                                        threshold=d.threshold or 0.0,
                                        hysteresis=d.hysteresis, on_delay_s=d.on_delay_s)
                for t in matched:
                    for tag_id in dev.add_tags(t, tags):
                        self._add_route(tag_id, dev.feed, d.id)
                    if t.tag_id in dev.tag_ids:
                        needs_bad_data.append(t)
                self.detectors.append(dev)
            elif d.kind == "spc":
                spc = SpcDetector(d.id, d.priority, characteristic=d.characteristic,
                                  characteristic_of=characteristics, rules=self.spc_rules)
                for t in matched:
                    spc.add_tag(t.tag_id, t.equipment_id, t.line_id, t.unit)
                    self._add_route(t.tag_id, spc.feed, d.id)
                    needs_bad_data.append(t)
                self.detectors.append(spc)
            elif d.kind == "state":
                stt = StateDetector(d.id, d.priority, on_delay_s=d.on_delay_s)
                for t in matched:
                    if t.kind == "state" and stt.add_tag(t.tag_id, t.equipment_id, t.line_id):
                        self._add_route(t.tag_id, stt.feed, d.id)
                self.detectors.append(stt)
                self.timed.append(stt)
            elif d.kind == "stale":
                stl = StaleDetector(d.id, d.priority, stale_after_s=d.stale_after_s or 30.0)
                for t in matched:
                    if t.tag_id in bad_data_covered:
                        continue  # an earlier stale detector owns this tag
                    stl.add_tag(t, check_stale=t.kind in stale_kinds)
                    self._add_route(t.tag_id, stl.feed, d.id)
                    bad_data_covered.add(t.tag_id)
                self.detectors.append(stl)
                self.timed.append(stl)
            elif d.kind == "ml_score":
                model = d.model or d.id
                ml = MlScoreDetector(d.id, model, d.threshold if d.threshold is not None
                                     else 0.5, d.priority,
                                     hysteresis=d.hysteresis or 0.05, on_delay_s=d.on_delay_s,
                                     source=score_sources.get(model), line_of={
                                         t.equipment_id: t.line_id for t in tags
                                         if t.equipment_id and t.line_id})
                self.detectors.append(ml)
                self.ml.append(ml)
            elif d.kind == "material":
                mat = MaterialDetector(d.id, d.priority)
                self.detectors.append(mat)
                self.material.append(mat)
        implicit = [t for t in needs_bad_data if t.tag_id not in bad_data_covered]
        if implicit:
            bad = StaleDetector("bad_data", "low", stale_after_s=30.0, check_stale=False)
            for t in {t.tag_id: t for t in implicit}.values():
                bad.add_tag(t, check_stale=False)
                self._add_route(t.tag_id, bad.feed, "bad_data")
            self.detectors.append(bad)
            self.timed.append(bad)
        # freeze: tuples iterate a little faster and cannot be changed by a handler
        self._route = {k: tuple(v) for k, v in self._route.items()}  # type: ignore[misc]

    def start(self, now: datetime | None = None) -> None:
        """Start stale clocks for every watched tag (a tag silent from the start is stale)."""
        at = now or self.clock.now()
        for d in self.timed:
            if isinstance(d, StaleDetector):
                d.expect(self._route.keys(), at)

    # ---------------------------------------------------------------- running

    def routes(self, tag_id: str) -> list[str]:
        """The detector ids a tag is routed to (for `loopline` diagnostics and tests)."""
        return list(self._names.get(tag_id, ()))

    def process(self, cs: ContextSample) -> list[Detection]:
        hs = self._route.get(cs.tag_id)
        if hs is None:
            return []
        out: list[Detection] = []
        for h in hs:
            r = h(cs)
            if r:
                out.extend(r)
        return out

    def process_many(self, samples: Iterable[ContextSample]) -> list[Detection]:
        route = self._route.get
        out: list[Detection] = []
        ext = out.extend
        for cs in samples:
            hs = route(cs.tag_id)
            if hs is not None:
                for h in hs:
                    r = h(cs)
                    if r:
                        ext(r)
        return out

    def tick(self, now: datetime | None = None) -> list[Detection]:
        """Timers: on-delays held without new samples, stale tags, Bad runs, micro-stops."""
        at = now or self.clock.now()
        out: list[Detection] = []
        for d in self.timed:
            out.extend(d.tick(at))
        return out

    def poll_scores(self, now: datetime | None = None) -> list[Detection]:
        at = now or self.clock.now()
        out: list[Detection] = []
        for d in self.ml:
            out.extend(d.poll(at))
        return out

    def check_material(self, store: object, lines: Iterable[str],
                       rate_of: Callable[[str, str], float] | None = None,
                       now: datetime | None = None) -> list[Detection]:
        """Project line-side stock against the plan for each line and material."""
        at = now or self.clock.now()
        out: list[Detection] = []
        for d in self.material:
            for line in lines:
                for mat, (stock, demand) in sorted(
                        line_side_inputs(store, line, at, d.horizon_h).items()):
                    rate = rate_of(line, mat) if rate_of else 0.0
                    out.extend(d.check(line, mat, stock, rate, demand, at))
        return out
