"""Jobs: retrain in a process pool (loop keeps running), score all equipment, drift check."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import polars as pl
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.config.schema import MlJob
from ml import synthetic
from ml.jobs import FrameSource, MlJobs
from ml.registry import Registry, RegistryError

JOB = MlJob(name="failure_risk", model="failure", score_every_s=30, retrain_cron="0 2 * * *",
            horizon_h=8, window_min=60)


async def test_retrain_score_and_drift_on_an_in_memory_source(
        tmp_path: Path, plant: synthetic.SyntheticPlant, final: synthetic.Fault) -> None:
    got: list[tuple[str, pl.DataFrame]] = []
    source = FrameSource(plant.history, plant.events, plant.quality)
    now = plant.at(final.fail_h - 4)
    jobs = MlJobs([JOB], Registry(tmp_path), source, on_scores=lambda n, s: got.append((n, s)),
                  clock=lambda: now, n_estimators=40)
    try:
        assert await jobs.score("failure_risk") is None  # no champion yet: nothing to say
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        t = asyncio.create_task(ticker())
        res = await jobs.retrain("failure_risk")
        t.cancel()
        assert ticks >= 3  # the loop kept running while the worker process trained
        assert res["version"] == 1 and res["decision"]["promoted"]
        scores = await jobs.score("failure_risk")
        assert scores is not None and scores.height == 8
        top = scores.sort("score", descending=True)
        assert top["equipment_id"][0] == "M0002"
        why = json.loads(top["why"][0])  # the engine gets the reasons with the score
        assert why and why[0]["contribution"] != 0 and ("signal" in why[0] or "context" in why[0])
        assert top["why"].null_count() == 8 - 5
        assert got and got[0][0] == "failure_risk"
        d = await jobs.check_drift("failure_risk")
        assert d is not None and {"feature", "psi", "drift"} <= set(d.columns)
        with pytest.raises(RegistryError, match="no enabled ML job"):
            await jobs.retrain("nope")
    finally:
        jobs.close()


async def test_schedule_puts_score_retrain_and_drift_jobs_on_the_scheduler(
        tmp_path: Path, plant: synthetic.SyntheticPlant) -> None:
    sched = AsyncIOScheduler()
    sched.start(paused=True)
    off = MlJob(name="off", model="rul", enabled=False)
    jobs = MlJobs([JOB, off], Registry(tmp_path), FrameSource(plant.history))
    try:
        added = {j.id: j for j in jobs.schedule(sched)}
        assert set(added) == {"ml.score.failure_risk", "ml.retrain.failure_risk",
                              "ml.drift.failure_risk"}
        score = sched.get_job("ml.score.failure_risk")
        assert isinstance(score.trigger, IntervalTrigger)
        assert score.trigger.interval.total_seconds() == 30
        assert score.max_instances == 1
        retrain = sched.get_job("ml.retrain.failure_risk")
        assert isinstance(retrain.trigger, CronTrigger)
        assert str(retrain.trigger.fields[5]) == "2"  # hour field of "0 2 * * *"
    finally:
        sched.shutdown(wait=False)
        jobs.close()
