"""DetectorSet from the default config: routing by glob, a stream through it, timers."""

from __future__ import annotations

import pytest
from detect_helpers import at, sample

from core.config.schema import Detector
from core.detect import Detection, DetectorSet
from core.detect.ml_score import Score
from core.detect.spc import ControlLimits
from core.detect.tags import TagInfo
from core.samples import Quality


def test_routes_follow_the_configured_globs(loaded_config, frozen_clock) -> None:  # type: ignore[no-untyped-def]
    ds = DetectorSet.from_config(loaded_config, frozen_clock)
    assert ds.routes("A-LATHE1.bearing_temp") == ["bearing_temp_high", "stale_data"]
    # the tool-wear detector watches vibration too (a bearing moves the current as well)
    assert ds.routes("C-PRESS1.vibration_rms") == ["vibration_high", "tool_wear_current",
                                                   "stale_data"]
    assert ds.routes("B-MOLD1.quality_value") == ["quality_spc", "stale_data"]
    # deviation detectors follow the machine's state (load) and its setpoints
    assert ds.routes("C-EXTR1.state") == ["heater_drift_high", "heater_drift_low",
                                          "clog_pressure", "unplanned_down", "stale_data"]
    assert ds.routes("C-EXTR1.zone_temp") == ["heater_drift_high", "heater_drift_low",
                                              "stale_data"]
    assert ds.routes("B-PACK1.motor_current") == ["stale_data"]  # no tool to wear
    assert "unplanned_down" not in ds.routes("C-EXTR1.status_fault")  # bool, not a code
    assert ds.routes("no.such_tag") == []
    assert ds.process(sample("no.such_tag", 0, 1.0)) == []
    assert {d.detector_id for d in ds.ml} == {"failure_risk", "scrap_risk"}
    assert [d.detector_id for d in ds.material] == ["material_short"]


def test_a_stream_yields_detections_from_several_detectors(loaded_config, frozen_clock) -> None:  # type: ignore[no-untyped-def]
    ds = DetectorSet.from_config(loaded_config, frozen_clock)
    ds.start(at(0))
    stream = []
    for t in range(0, 200, 10):
        temp = 70.0 if t < 50 else 85.0  # above HI 80 from t=50, on-delay 60 s
        stream.append(sample("A-LATHE1.bearing_temp", t, temp))
        stream.append(sample("A-LATHE1.vibration_rms", t, 2.0))
    stream.append(sample("A-LATHE1.state", 0, 1))
    stream.append(sample("A-LATHE1.state", 150, 4))
    got = ds.process_many(stream)
    keys = [(d.problem_key, d.cleared) for d in got]
    assert ("limit:A-LATHE1.bearing_temp:hi", False) in keys
    assert ("state:A-LATHE1:down_unplanned", False) in keys
    hi = next(d for d in got if d.problem_key.endswith("bearing_temp:hi"))
    assert hi.onset == at(50) and hi.ts == at(110)
    # every other signal tag of the plant was silent: stale after 30 s, reported by tick
    stale = ds.tick(at(200))
    stale_tags = {d.tag_id for d in stale if d.kind == "stale"}
    assert "A-MILL1.bearing_temp" in stale_tags
    assert "A-LATHE1.bearing_temp" not in stale_tags  # it reported at t=190
    assert "A-LATHE1.lot" not in stale_tags  # context tags publish on change only
    assert ds.tick(at(201)) == []


def test_bad_samples_feed_the_bad_data_tracker_not_the_limit(loaded_config, frozen_clock) -> None:  # type: ignore[no-untyped-def]
    ds = DetectorSet.from_config(loaded_config, frozen_clock)
    got = ds.process_many(sample("A-LATHE1.bearing_temp", t, 150.0, Quality.BAD, "comms")
                          for t in range(0, 120, 5))
    assert [d.kind for d in got] == ["bad_data"]
    assert got[0].priority == "low" and got[0].tag_id == "A-LATHE1.bearing_temp"


def test_limit_without_a_stale_detector_gets_an_implicit_bad_data_tracker(frozen_clock) -> None:  # type: ignore[no-untyped-def]
    from core.config.schema import Limits

    ds = DetectorSet(frozen_clock)
    tags = [TagInfo("X-1.temp", "temp", "X-1", "X", "signal", "°C", Limits(hi=50.0))]
    ds.build([Detector(id="temp_hi", kind="limit", tags=["*.temp"]),
              Detector(id="off", kind="limit", tags=["*"], enabled=False)], tags, {})
    assert ds.routes("X-1.temp") == ["temp_hi", "bad_data"]
    got = ds.process_many(sample("X-1.temp", t, None, Quality.BAD) for t in range(0, 60, 10))
    assert [d.problem_key for d in got] == ["bad_data:X-1.temp"]


def test_ml_scores_are_polled_from_the_configured_sources(loaded_config, frozen_clock) -> None:  # type: ignore[no-untyped-def]
    ds = DetectorSet.from_config(loaded_config, frozen_clock, score_sources={
        "failure_risk": lambda: {"A-LATHE1": Score(0.8, line_id="A")}})
    got = ds.poll_scores(at(0))
    assert [(d.detector_id, d.equipment_id, d.priority) for d in got] == [
        ("failure_risk", "A-LATHE1", "high")]


def test_detections_become_engine_events() -> None:
    pytest.importorskip("core.events")
    d = Detection(kind="limit", detector_id="bearing_temp_high",
                  problem_key="limit:A-LATHE1.bearing_temp:hi", priority="high", onset=at(0),
                  summary="hot", equipment_id="A-LATHE1", line_id="A",
                  context={"lot_id": "L-00101", "order_id": "PO-0001"})
    ev = d.as_event()
    assert ev.kind == "detection" and ev.problem_key == d.problem_key
    assert ev.lot_id == "L-00101" and ev.detail["onset"] == at(0).isoformat()


@pytest.mark.parametrize(("rules", "fired"), [(range(1, 9), [7]), ((1, 2), [])])
def test_spc_rules_can_be_narrowed(loaded_config, frozen_clock, rules, fired) -> None:  # type: ignore[no-untyped-def]
    ds = DetectorSet.from_config(loaded_config, frozen_clock, spc_rules=rules)
    spc = next(d for d in ds.detectors if getattr(d, "kind", "") == "spc")
    spc.set_limits("quality_value[R-SH20]", ControlLimits(0.0, 1.0), "A-LATHE1", "A")
    got = ds.process_many(sample("A-LATHE1.quality_value", i, v)
                          for i, v in enumerate([0.5, 0.3, -0.5, -0.3] * 4))  # rule 7 only
    assert [d.evidence["rule"] for d in got] == fired
