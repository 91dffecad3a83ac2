"""DetectLoop: detections reach the engine, the alarms and the event stream; cadences hold."""

from __future__ import annotations

import pytest
from detect_helpers import at, sample

from core.alarms import AlarmManager
from core.detect import DetectorSet
from core.detect.loop import DetectLoop
from core.detect.ml_score import Score


def test_samples_to_engine_alarms_and_events(store, loaded_config, frozen_clock) -> None:  # type: ignore[no-untyped-def]
    events_mod = pytest.importorskip("core.events")
    bus = events_mod.EventBus()
    seen = events_mod.EventLog(bus)
    engine_got = []
    calls = {"n": 0}

    def scores() -> dict[str, Score]:
        calls["n"] += 1
        return {"A-LATHE1": Score(0.9)}

    ds = DetectorSet.from_config(loaded_config, frozen_clock,
                                 score_sources={"failure_risk": scores})
    mgr = AlarmManager.from_config(store, loaded_config, frozen_clock)
    loop = DetectLoop(ds, frozen_clock, alarms=mgr, on_detection=engine_got.append,
                      publish=bus.publish, score_every_s=30)
    loop.on_samples([sample("A-LATHE1.state", 0, 1), sample("A-LATHE1.state", 10, 4)])
    assert [d.problem_key for d in engine_got] == ["state:A-LATHE1:down_unplanned"]
    assert [e.kind for e in seen.events] == ["detection", "alarm"]
    assert mgr.by_key("state:A-LATHE1:down_unplanned") is not None
    loop.tick(at(10))
    loop.tick(at(20))  # not yet time to poll scores again
    loop.tick(at(41))
    assert calls["n"] == 2
    assert [d.problem_key for d in engine_got if d.kind == "ml_score"] == [
        "ml_score:A-LATHE1:failure_risk"]
    assert loop.stats.samples == 2 and loop.stats.detections["ml_score"] == 1


def test_a_failing_consumer_does_not_stop_detection(loaded_config, frozen_clock) -> None:  # type: ignore[no-untyped-def]
    def broken(_: object) -> None:
        raise RuntimeError("recommender down")

    ds = DetectorSet.from_config(loaded_config, frozen_clock)
    loop = DetectLoop(ds, frozen_clock, on_detection=broken)
    got = loop.on_samples([sample("A-LATHE1.state", 0, 1), sample("A-LATHE1.state", 10, 4),
                           sample("B-MOLD1.state", 0, 1), sample("B-MOLD1.state", 10, 4)])
    assert len(got) == 2 and loop.stats.consumer_errors == 2
