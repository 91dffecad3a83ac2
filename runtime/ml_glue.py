"""The ML jobs inside the runtime: scores into detector inputs, drift into a retrain
recommendation, and the outbox's retrain adapter.

Kept apart from the host so the host only wires: what a score frame means to the
detectors, and what drift means to the engine, is decided here. The jobs themselves
(features, models, registry, APScheduler) live in ml/.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from core.config import LoadedConfig
from core.detect.ml_score import Score
from core.engine.engine import drift_detection
from core.engine.executors import ActionFailed, TransientError
from core.events import EngineEvent, ModelEvent
from core.store.db import Store

log = logging.getLogger(__name__)


class MlGlue:
    """One runtime's ML jobs. ``start()`` on the runtime's loop; ``close()`` at stop.

    ``submit`` takes a detection to be decided off the detection thread (the runtime's
    plan lane); ``publish`` puts events on the bus; ``error`` counts and reports a fault.
    """

    def __init__(self, loaded: LoadedConfig, store: Store, *, now: Callable[[], datetime],
                 publish: Callable[[EngineEvent], None],
                 submit: Callable[[Any], None],
                 error: Callable[[str, BaseException], None], wanted: bool = True) -> None:
        self.loaded, self.store = loaded, store
        self._now, self._publish, self._submit, self._error = now, publish, submit, error
        self.wanted = wanted
        self.jobs: Any = None  # ml.jobs.MlJobs
        self.scheduler: Any = None
        self.scores: dict[str, dict[str, Score]] = {}
        self.tried = False  # started, or found not wanted / failing
        self._loop: asyncio.AbstractEventLoop | None = None

    def source_for(self, model: str) -> Callable[[], dict[str, Score]]:
        """What an ml_score detector reads: the newest scores of one model."""
        return lambda: self.scores.get(model, {})

    def start(self, models_dir: Path | None = None) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        from ml.jobs import MlJobs
        from ml.registry import Registry
        from ml.store_source import StoreSource

        self._loop = asyncio.get_running_loop()
        self.tried = True
        jobs = [j for j in self.loaded.config.ml.jobs if j.enabled]
        if not jobs:
            return
        try:
            source = StoreSource(self.store, self.loaded.archive_dir,
                                 [t.id for t in self.loaded.tags])
            self.jobs = MlJobs(jobs, Registry(models_dir or self.loaded.models_dir), source,
                               on_scores=self.on_scores, on_drift=self.on_drift,
                               clock=self._now)
            self.scheduler = AsyncIOScheduler(timezone="UTC")
            # scoring every N wall seconds; retraining on its cron in wall-clock UTC (a
            # fast twin does not speed it up); ``loopline train`` retrains on demand
            self.jobs.schedule(self.scheduler)
            self.scheduler.start()
        except Exception as e:
            self._error("ML jobs (the loop runs without model scores)", e)

    def close(self) -> None:
        if self.scheduler is not None:
            with contextlib.suppress(Exception):
                self.scheduler.shutdown(wait=False)
        if self.jobs is not None:
            with contextlib.suppress(Exception):
                self.jobs.close()

    def on_scores(self, name: str, frame: Any) -> None:
        self.scores[name] = scores_from_frame(frame)
        top = max(self.scores[name].items(), key=lambda kv: kv[1].value, default=None)
        self._publish(ModelEvent(
            self._now(), f"{name}: scored {len(self.scores[name])}"
            + (f"; highest {top[0]} {top[1].value:.2f}" if top else ""),
            equipment_id=top[0] if top else None, model=name, status="scored",
            detail={"scored": len(self.scores[name])}))

    def on_drift(self, name: str, frame: Any) -> None:
        """Drift is news (a model event) and a problem (a retrain recommendation, decided
        under the ``retrain`` autonomy class like any other action)."""
        cols = getattr(frame, "columns", [])
        rows = [{"feature": str(r["feature"]), "psi": float(r.get("psi") or 0.0)}
                for r in frame.to_dicts()] if "feature" in cols else []
        feats = [r["feature"] for r in rows][:10]
        self._publish(ModelEvent(self._now(), f"{name}: input drift in "
                                 f"{', '.join(feats) or 'some features'}", model=name,
                                 status="drift", detail={"features": feats}))
        if not rows:
            return
        job = self.jobs.jobs.get(name) if self.jobs is not None else None
        self._submit(drift_detection(name, rows, self._now(), job.model if job else ""))

    def start_retrain(self, model: str, key: str) -> dict[str, Any]:
        """The outbox's retrain adapter (outbox thread): start the job on the loop, return."""
        if self.jobs is None:
            if self.wanted and not self.tried:
                raise TransientError("the ML jobs are not started yet")
            raise ActionFailed(f"this runtime runs no ML jobs: train {model} with "
                               f"`loopline train {model}`")
        if model not in self.jobs.jobs:
            raise ActionFailed(f"no enabled ML job named {model!r} "
                               f"(configured: {', '.join(self.jobs.jobs) or 'none'})")
        if self._loop is None or not self._loop.is_running():
            raise TransientError("the runtime's event loop is not running")
        started = self._now()
        asyncio.run_coroutine_threadsafe(self._retrain(model, key), self._loop)
        return {"started_at": started.isoformat(), "job": model}

    async def _retrain(self, model: str, key: str) -> None:
        assert self.jobs is not None
        try:
            res = await self.jobs.retrain(model)
        except Exception as e:
            self._publish(ModelEvent(self._now(), f"{model}: retraining failed: {e}",
                                     model=model, status="failed", detail={"key": key}))
            return
        dec = res.get("decision", {}) if isinstance(res, dict) else {}
        self._publish(ModelEvent(
            self._now(), f"{model}: retrained v{res.get('version')}: "
            f"{dec.get('reason', 'done')}", model=model,
            status="promoted" if dec.get("promoted") else "trained", version=res.get("version"),
            detail={"key": key, "version": res.get("version"), "decision": dec}))


def scores_from_frame(frame: Any) -> dict[str, Score]:
    """The ML jobs' score frame → the detectors' ``Score`` per equipment (or lot)."""
    from ml.explain import sentence

    out: dict[str, Score] = {}
    if frame is None or getattr(frame, "height", 0) == 0 or "score" not in frame.columns:
        return out
    key = "lot_id" if "lot_id" in frame.columns else "equipment_id"
    lot_ctx = [c for c in ("equipment_id", "line_id", "order_id", "batch_id", "recipe_id",
                           "shift_id", "operator_id") if c in frame.columns]
    for row in frame.iter_rows(named=True):
        if row.get("low_data") or row.get("score") is None:
            continue  # too little good data: no score rather than a guess
        contribs: dict[str, float] = {}
        words = ""
        why = row.get("why")
        if why:
            with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
                items = json.loads(why)
                for it in items:
                    name = f"{it.get('signal') or it.get('context')}.{it.get('feature')}"
                    contribs[name] = float(it.get("contribution", 0.0))
                words = "; ".join(sentence(it) for it in items[:3])
        ts = row.get("ts")
        ctx: dict[str, str] = {}
        if key == "lot_id":  # a lot's score carries the lot's context: a hold can follow
            ctx = {"lot_id": str(row["lot_id"]),
                   **{c: str(row[c]) for c in lot_ctx if row.get(c) is not None}}
        out[str(row[key])] = Score(float(row["score"]),
                                   ts=ts if isinstance(ts, datetime) else None,
                                   line_id=ctx.get("line_id"), contributions=contribs,
                                   explanation=words, context=ctx)
    return out
