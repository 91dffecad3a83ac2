"""Model drift → one retrain recommendation per model → approved → started exactly once."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select

from core import audit
from core.auth import AuthError
from core.engine.executors import ActionFailed
from core.store.models import Action, Recommendation
from engine.helpers import PINS, make_engine

DRIFT = [{"feature": "vibration_rms__mean_60m", "psi": 0.41},
         {"feature": "bearing_temp__slope_360m", "psi": 0.27}]


class Starter:
    """The runtime's retrain starter, recorded: what an adapter asked for, how often."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = fail

    def __call__(self, model: str, key: str) -> dict[str, Any]:
        if self.fail:
            raise ActionFailed(self.fail)
        self.calls.append((model, key))
        return {"job": model, "started_at": "2026-01-05T06:00:00+00:00"}


def recs(store) -> list[Recommendation]:
    with store.session() as s:
        return list(s.exec(select(Recommendation)).all())


def test_drift_recommends_retraining_once_per_model(store, loaded_config, frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    first = eng.on_model_drift("bearing_failure", DRIFT, approve="never")
    assert first.outcome == "created"
    [rec] = recs(store)
    assert (rec.decision_class, rec.target, rec.action) == ("retrain", "bearing_failure",
                                                            "retrain_model")
    assert rec.required_role == "admin" and rec.status == "proposed"
    assert "vibration_rms__mean_60m (PSI 0.41)" in rec.rationale
    frozen_clock.advance(3600)  # the next hourly check finds it again
    again = eng.on_model_drift("bearing_failure", DRIFT[:1], approve="never")
    assert again.recommendation_id == first.recommendation_id
    assert len(recs(store)) == 1
    other = eng.on_model_drift("scrap_risk", DRIFT[1:], approve="never")
    assert other.recommendation_id != first.recommendation_id and len(recs(store)) == 2


def test_no_drifted_feature_recommends_nothing(store, loaded_config, frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)
    assert eng.on_model_drift("bearing_failure", [], approve="auto").outcome == "ignored"
    assert recs(store) == []


def test_approved_retrain_starts_once_even_when_resumed(store, loaded_config, frozen_clock):
    starter = Starter()
    eng = make_engine(store, loaded_config, frozen_clock, retrain=starter)
    rid = eng.on_model_drift("bearing_failure", DRIFT, approve="never").recommendation_id
    assert rid is not None
    with pytest.raises(AuthError, match="may not decide retrain"):
        eng.approve(rid, user_id="maya", pin=PINS["maya"])  # maintenance: not theirs
    eng.approve(rid, user_id="ada", pin=PINS["ada"])
    [res] = eng.run_outbox()
    assert res.status == "done" and res.result["already_done"] is False
    assert starter.calls and starter.calls[0][0] == "bearing_failure"
    # a process killed after the start but before 'done' runs the action again
    with store.begin() as conn:
        conn.execute(Action.__table__.update().values(status="running"))  # type: ignore[attr-defined]
    eng2 = make_engine(store, loaded_config, frozen_clock, retrain=starter)
    assert eng2.executor.recover()
    [again] = eng2.run_outbox()
    assert again.status == "done" and again.result["already_done"] is True
    assert len(starter.calls) == 1
    assert "model.retrain_started" in [r.action for r in audit.recent(store.engine, 200)]


def test_retrain_without_ml_jobs_fails_with_the_command_to_run(store, loaded_config,
                                                               frozen_clock):
    eng = make_engine(store, loaded_config, frozen_clock)  # no retrainer: no ML here
    eng.on_model_drift("bearing_failure", DRIFT, approve="auto")
    [res] = eng.run_outbox()
    assert res.status == "failed"
    assert "loopline train bearing_failure" in str(res.result)
    failing = make_engine(store, loaded_config, frozen_clock,
                          retrain=Starter(fail="no enabled ML job named 'x'"))
    failing.on_model_drift("x", DRIFT, approve="auto")
    [res2] = failing.run_outbox()
    assert res2.status == "failed" and "no enabled ML job" in str(res2.result)
