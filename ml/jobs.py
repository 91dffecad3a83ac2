"""Scheduled ML work for the runtime: score every N s, retrain on cron, check drift.

``MlJobs`` takes the config's [[ml.jobs]], a registry and a data source (anything with
``history``/``events``/``quality`` for a time range: ``FrameSource`` in tests,
``ml.store_source.StoreSource`` on the plant) and puts its jobs on an APScheduler
AsyncIOScheduler. Scoring runs
in a thread and training in a process pool, so the event loop (console, drivers) never
stalls; a job that is still running is not started twice.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import multiprocessing
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
import polars as pl
from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.config.schema import MlJob
from ml import drift, explain, models
from ml.contract import Events
from ml.features import FeatureSpec
from ml.registry import Registry, RegistryError

log = logging.getLogger(__name__)


class DataSource(Protocol):
    def history(self, start: datetime | None, end: datetime) -> pl.DataFrame: ...
    def events(self, start: datetime | None, end: datetime) -> Events: ...
    def quality(self, start: datetime | None, end: datetime) -> pl.DataFrame | None: ...


@dataclass
class FrameSource:
    """An in-memory source over frames in the history contract (tests, replays)."""

    frame: pl.DataFrame
    event_data: Events = field(default_factory=Events.empty)
    quality_data: pl.DataFrame | None = None

    def history(self, start: datetime | None, end: datetime) -> pl.DataFrame:
        f = self.frame.filter(pl.col("ts") <= end)
        return f if start is None else f.filter(pl.col("ts") > start)

    def events(self, start: datetime | None, end: datetime) -> Events:
        prev = self.event_data.prevented
        return Events(self.event_data.states.filter(pl.col("start") <= end),
                      self.event_data.maintenance.filter(pl.col("ts") <= end),
                      None if prev is None else prev.filter(pl.col("ts") <= end))

    def quality(self, start: datetime | None, end: datetime) -> pl.DataFrame | None:
        q = self.quality_data
        return None if q is None else q.filter(pl.col("ts") <= end)


def spec_for(job: MlJob) -> FeatureSpec:
    """Feature windows from the job's window_min: the window and six times it."""
    w = int(job.window_min)
    every = "15m" if w % 15 == 0 else f"{w}m"
    ev = 15 if w % 15 == 0 else w
    base = -(-12 * 60 // ev) * ev  # the machine's own normal: 12 h, rounded up to `every`
    return FeatureSpec(every=every, windows=(f"{w}m", f"{6 * w}m"), base=f"{base}m")


def train_and_register(models_dir: str, job: MlJob, history: pl.DataFrame, events: Events,
                       quality: pl.DataFrame | None, n_estimators: int = 150,
                       seed: int = 0) -> dict[str, Any]:
    """Train, store as challenger, promote only if it beats the champion. Runs in a worker."""
    kw: dict[str, Any] = {"name": job.name, "n_estimators": n_estimators, "seed": seed}
    if job.model in ("failure", "rul", "anomaly"):
        kw.update(spec=spec_for(job))
        if job.model != "anomaly":
            kw.update(horizon_h=job.horizon_h)
    model = models.train(job.model, history, events, quality, **kw)
    reg = Registry(models_dir)
    rec = reg.save(model)
    dec = reg.promote_if_better(
        job.name, rec["version"],
        lambda m: models.evaluate(m, models.holdout_frame(m, history, events, quality)),
    )
    return {"name": job.name, "version": rec["version"], "metrics": model.metrics,
            "decision": dec.as_dict(), "train_s": round(model.train_s, 3)}


def with_explanations(model: models.Model, frame: pl.DataFrame, scores: pl.DataFrame,
                      top: int) -> pl.DataFrame:
    """Add a ``why`` column (JSON list of contributions) to the ``top`` most worrying rows.

    Worrying = highest score, or lowest remaining life for RUL. Anomaly scores explain
    themselves per signal (the anomaly__<signal> columns), so they get none.
    """
    if top <= 0 or model.kind == "anomaly" or scores.height == 0:
        return scores.with_columns(pl.lit(None, pl.String).alias("why"))
    idx = np.argsort(scores["score"].to_numpy())
    pick = idx[:top] if model.kind == "rul" else idx[::-1][:top]
    items = explain.explain(model, frame[pick.tolist()])
    why = [None] * scores.height
    for i, it in zip(pick.tolist(), items, strict=True):
        why[i] = json.dumps(it, ensure_ascii=False)
    return scores.with_columns(pl.Series("why", why, dtype=pl.String))


def _now() -> datetime:
    return datetime.now(UTC)


ScoreSink = Callable[[str, pl.DataFrame], Awaitable[None] | None]
DriftSink = Callable[[str, pl.DataFrame], Awaitable[None] | None]


class MlJobs:
    def __init__(self, jobs: list[MlJob], registry: Registry, source: DataSource, *,
                 on_scores: ScoreSink | None = None, on_drift: DriftSink | None = None,
                 clock: Callable[[], datetime] = _now, train_days: float = 30.0,
                 n_estimators: int = 150, executor: Executor | None = None,
                 drift_every_s: float = 3600.0, drift_hours: float = 24.0,
                 explain_top: int = 5) -> None:
        self.jobs = {j.name: j for j in jobs if j.enabled}
        self.registry, self.source = registry, source
        self.on_scores, self.on_drift = on_scores, on_drift
        self.clock, self.train_days, self.n_estimators = clock, train_days, n_estimators
        self.drift_every_s, self.drift_hours = drift_every_s, drift_hours
        self.explain_top = explain_top
        self._executor = executor
        self._own_executor = executor is None
        self._cache: dict[str, tuple[int, models.Model]] = {}
        self.last_scores: dict[str, pl.DataFrame] = {}

    # -------------------------------------------------------------- scheduling

    def schedule(self, scheduler: AsyncIOScheduler) -> list[Job]:
        """Add scoring, retraining and drift jobs; one instance of each at a time."""
        out = []
        for name, job in self.jobs.items():
            common = {"max_instances": 1, "coalesce": True, "replace_existing": True}
            out.append(scheduler.add_job(self.score, IntervalTrigger(seconds=job.score_every_s),
                                         args=[name], id=f"ml.score.{name}", **common))
            out.append(scheduler.add_job(
                self.retrain, CronTrigger.from_crontab(job.retrain_cron, timezone=UTC),
                args=[name], id=f"ml.retrain.{name}", **common))
            out.append(scheduler.add_job(self.check_drift,
                                         IntervalTrigger(seconds=self.drift_every_s),
                                         args=[name], id=f"ml.drift.{name}", **common))
        return out

    def _job(self, name: str) -> MlJob:
        try:
            return self.jobs[name]
        except KeyError:
            raise RegistryError(f"no enabled ML job named {name!r} "
                                f"(configured: {', '.join(self.jobs) or 'none'})") from None

    def _champion(self, name: str) -> models.Model | None:
        rec = self.registry.champion(name) if name in self.registry.names() else None
        if rec is None:
            return None
        cached = self._cache.get(name)
        if cached is None or cached[0] != rec["version"]:
            cached = (rec["version"], self.registry.load(name, rec["version"]))
            self._cache[name] = cached
        return cached[1]

    # -------------------------------------------------------------- jobs

    async def score(self, name: str) -> pl.DataFrame | None:
        """Score every equipment (or recent lot) with the champion; None without one."""
        model = self._champion(name)
        if model is None:
            return None
        now = self.clock()
        if model.grain == "lot":
            start = now - timedelta(days=1)
        else:
            start = now - model.spec.lookback()  # type: ignore[union-attr]
        loop = asyncio.get_running_loop()
        scores = await loop.run_in_executor(None, self._score_sync, model, start, now)
        self.last_scores[name] = scores
        await _call(self.on_scores, name, scores)
        return scores

    def _score_sync(self, model: models.Model, start: datetime, now: datetime) -> pl.DataFrame:
        hist = self.source.history(start, now)
        if hist.height == 0:
            return pl.DataFrame()
        frame = models.features_for(model, hist, self.source.events(None, now), as_of=now)
        scores = models.score(model, frame)
        return with_explanations(model, frame, scores, self.explain_top)

    async def retrain(self, name: str) -> dict[str, Any]:
        """Train a challenger in the process pool and promote it if it wins."""
        job = self._job(name)
        now = self.clock()
        start = now - timedelta(days=self.train_days)
        hist = self.source.history(start, now)
        events, quality = self.source.events(None, now), self.source.quality(start, now)
        loop = asyncio.get_running_loop()
        fn = functools.partial(train_and_register, str(self.registry.root), job, hist, events,
                               quality, self.n_estimators)
        result = await loop.run_in_executor(self._pool(), fn)
        self._cache.pop(name, None)
        log.info("retrained %s: v%s %s", name, result["version"], result["decision"]["reason"])
        return result

    async def check_drift(self, name: str) -> pl.DataFrame | None:
        """PSI of recent features against the champion's training data; report drift."""
        model = self._champion(name)
        if model is None:
            return None
        now = self.clock()
        start = now - timedelta(hours=self.drift_hours)
        loop = asyncio.get_running_loop()

        def run() -> pl.DataFrame:
            hist = self.source.history(start - timedelta(hours=6), now)
            f = models.features_for(model, hist, self.source.events(None, now), latest=False)
            f = f.filter(pl.col("ts") > start) if "ts" in f.columns else f
            return drift.check(model.reference, f)

        res = await loop.run_in_executor(None, run)
        if res.filter(pl.col("drift")).height:
            await _call(self.on_drift, name, res.filter(pl.col("drift")))
        return res

    def _pool(self) -> Executor:
        if self._executor is None:
            # spawn, not fork: forking a process with polars/xgboost threads can deadlock
            self._executor = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self._executor

    def close(self) -> None:
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


async def _call(cb: Callable[..., Awaitable[None] | None] | None, *args: Any) -> None:
    if cb is None:
        return
    r = cb(*args)
    if asyncio.iscoroutine(r):
        await r
