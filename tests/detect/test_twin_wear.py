"""Tool, heater and clog wear on the plant twin's physics, found by the configured
deviation detectors hours before the failure, and a healthy twin that stays quiet."""

from __future__ import annotations

from datetime import timedelta

from bench.bench_detect import T0, twin_batch, twin_tags
from core.clock import FrozenClock, parse_utc
from core.detect import DetectorSet
from sim.master import load_master
from sim.plant import Plant
from sim.truth import TruthLog

WORN = {"tool": "A-MILL1", "heater": "B-MOLD2", "clog": "C-EXTR1"}


def run(cfg, seconds: int, injections: list[tuple[str, str, int, float]], seed: int = 5):  # type: ignore[no-untyped-def]
    plant = Plant(cfg, load_master(cfg.master_data_path), seed=seed, start=T0,
                  truth=TruthLog(None))
    for kind, eq, at_s, done in injections:
        plant.inject(kind, eq, at_s, done)
    clock = FrozenClock(T0)
    ds = DetectorSet.from_config(cfg, clock)
    tags, last, dets = twin_tags(cfg, plant), {}, []
    for _ in range(seconds):
        plant.step()
        clock.set(plant.now())
        dets += [d for d in ds.process_many(twin_batch(plant, tags, last))
                 if d.kind == "deviation"]
    return plant, dets


def test_tool_heater_and_clog_wear_are_found_hours_before_the_failure(loaded_config) -> None:  # type: ignore[no-untyped-def]
    # each fault starts a fifth of its way in, an hour into the run (baselines learned)
    plant, dets = run(loaded_config, 17 * 3600,
                      [(kind, eq, 3600, 0.2) for kind, eq in WORN.items()])
    truth = plant.truth.events
    for kind, eq in WORN.items():
        started = next(e for e in truth if e["event"] == "fault_started"
                       and e.get("kind") == kind)
        fail_at = parse_utc(started["failure_at"])
        assert any(e["event"] == "failure" and e.get("kind") == kind for e in truth)
        first = next(d for d in dets if d.equipment_id == eq and not d.cleared)
        assert first.evidence["fault_mode"] == kind, first.summary
        assert first.evidence["signals"][0]["baseline"] is not None
        assert fail_at - first.ts >= timedelta(hours=2), (kind, first.ts, fail_at)
    # nothing on the machines that were not worn, no wrong fault named
    assert {d.equipment_id for d in dets} <= set(WORN.values())
    assert all(d.evidence.get("fault_mode") == k for k, eq in WORN.items()
               for d in dets if d.equipment_id == eq)


def test_a_healthy_twin_stays_quiet(loaded_config) -> None:  # type: ignore[no-untyped-def]
    _, dets = run(loaded_config, 24 * 3600, [], seed=9)
    assert dets == []
