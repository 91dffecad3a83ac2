"""The runtime turns a drift check's finding into a retrain recommendation (on the plan
thread's queue, decided like any detection) and refuses to retrain without ML jobs."""

from __future__ import annotations

import polars as pl
import pytest
from engine.helpers import make_engine

from core.engine.executors import ActionFailed, TransientError
from core.events import ModelEvent
from runtime.host import Runtime, RuntimeOptions


def test_drift_becomes_a_recommendation_and_a_model_event(store, loaded_config,  # type: ignore[no-untyped-def]
                                                          frozen_clock) -> None:
    rt = Runtime(loaded_config, store, RuntimeOptions(approve="never", ml=False))
    rt.clock = frozen_clock
    rt.engine = make_engine(store, loaded_config, frozen_clock, bus=rt.bus,
                            retrain=rt.ml.start_retrain)
    seen: list = []
    rt.bus.subscribe(seen.append)
    frame = pl.DataFrame({"feature": ["zone_temp__mean_60m", "flow__std_60m"],
                          "psi": [0.52, 0.3], "drift": [True, True]})
    rt.ml.on_drift("scrap_risk", frame)
    [ev] = [e for e in seen if isinstance(e, ModelEvent)]
    assert ev.status == "drift" and "zone_temp__mean_60m" in ev.summary
    det = rt._plan_q.get_nowait()
    res = rt._decide(det)
    assert res.outcome == "created"
    with pytest.raises(ActionFailed, match="loopline train scrap_risk"):
        rt.ml.start_retrain("scrap_risk", "k1")  # this runtime runs without ML


def test_retrain_waits_for_ml_jobs_still_starting(store, loaded_config) -> None:  # type: ignore[no-untyped-def]
    rt = Runtime(loaded_config, store, RuntimeOptions(ml=True))
    with pytest.raises(TransientError, match="not started yet"):
        rt.ml.start_retrain("failure_risk", "k1")
