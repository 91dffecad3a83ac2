"""The simulation core without servers: determinism, degradation, quality, control, flow."""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime

import pytest

from core.config import LoadedConfig
from sim.master import Master
from sim.physics import STATE_DOWN_UNPLANNED, STATE_RUNNING
from sim.plant import Plant
from sim.truth import TruthLog

START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def plant(cfg: LoadedConfig, master: Master, seed: int = 3, lines: list[str] | None = None,
          faults: float = 0.0) -> Plant:
    return Plant(cfg, master, seed=seed, start=START, truth=TruthLog(None), lines=lines,
                 random_faults_per_day=faults)


def test_same_seed_same_truth_and_different_seed_differs(cfg, master) -> None:
    runs = []
    for seed in (11, 11, 12):
        p = plant(cfg, master, seed=seed, faults=20.0)
        p.inject("bearing", "A-LATHE1", 600)
        p.run(3 * 3600)
        runs.append(p.truth.events)
    assert runs[0] == runs[1]
    assert len(runs[0]) > 20
    assert runs[0] != runs[2]


def test_bearing_fault_fails_without_intervention_with_a_visible_precursor(cfg, master) -> None:
    p = plant(cfg, master, lines=["A"])
    p.inject("bearing", "A-LATHE1", 3600)
    lathe = p.machines["A-LATHE1"]
    vib: list[tuple[int, float]] = []
    failed_at = None
    while p.t < 20 * 3600:
        p.step()
        if p.t % 60 == 0 and lathe.state == STATE_RUNNING:  # the same load throughout
            vib.append((p.t, lathe.vibration))
        if lathe.state == STATE_DOWN_UNPLANNED and failed_at is None:
            failed_at = p.t
            break
    assert failed_at is not None, "an injected bearing fault must end in a failure"
    started = next(e for e in p.truth.events if e["event"] == "fault_started")
    failure = next(e for e in p.truth.events if e["event"] == "failure")
    assert started["failure_at"] == failure["t"]  # the truth log knew the failure time
    assert failure["kind"] == "bearing" and failure["equipment"] == "A-LATHE1"
    early = [v for t, v in vib if 3600 <= t < 3 * 3600]
    mid = [v for t, v in vib if failed_at - 6 * 3600 <= t < failed_at - 4 * 3600]
    late = [v for t, v in vib if failed_at - 2 * 3600 <= t < failed_at - 3600]
    # hours before the failure the level is already up, but buried in the spread:
    assert statistics.median(mid) > statistics.median(early) + 0.4
    assert max(early) > min(mid)
    # and it keeps climbing (a trend, not a step)
    assert statistics.median(late) > statistics.median(mid) + 1.0


def test_a_fault_injected_part_way_fails_within_the_rest_of_its_course(cfg, master) -> None:
    p = plant(cfg, master, lines=["A"])
    p.inject("bearing", "A-LATHE1", 60, done=0.9)  # 8-16 h course, 90 % already run
    p.run(2 * 3600)
    started = next(e for e in p.truth.events if e["event"] == "fault_started")
    failure = next(e for e in p.truth.events if e["event"] == "failure")
    assert failure["equipment"] == "A-LATHE1" and started["failure_at"] == failure["t"]
    with pytest.raises(ValueError, match="within"):
        p.inject("bearing", "A-LATHE1", 60, done=1.0)


def test_inject_option_takes_the_share_already_run(cfg) -> None:
    from sim.args import SimUsageError, parse_inject

    assert parse_inject("bearing:A-LATHE1@0~0.8") == ("bearing", "A-LATHE1", 0, 0.8)
    assert parse_inject("bearing:A-LATHE1@2h") == ("bearing", "A-LATHE1", 7200, 0.0)
    with pytest.raises(SimUsageError, match="0 <= F < 1"):
        parse_inject("bearing:A-LATHE1@0~1.5")


def test_completed_work_order_prevents_the_failure(cfg, master) -> None:
    p = plant(cfg, master, lines=["A"])
    p.inject("bearing", "A-LATHE1", 3600)
    p.run(3 * 3600)
    assert "bearing" in p.machines["A-LATHE1"].degradations
    assert p.command("A-LATHE1", {"cmd": "complete_wo", "fault": "bearing",
                                  "wo": "WO-1"}) is None
    p.run(30 * 60)
    # a retried write of the same work order is acknowledged but does not act again
    assert p.command("A-LATHE1", {"cmd": "complete_wo", "fault": "bearing",
                                  "wo": "WO-1"}) is None
    assert p.machines["A-LATHE1"].planned_until < p.t
    assert p.truth.events[-1]["event"] == "command_duplicate"
    p.run(20 * 3600)
    assert not [e for e in p.truth.events if e["event"] == "failure"]
    wo = next(e for e in p.truth.events if e["event"] == "wo_completed")
    assert wo["fault_was_active"] and wo["wo"] == "WO-1" and wo["would_have_failed_at"]


def _lathe_quality(p: Plant, hours: float) -> list[float]:
    lathe = p.machines["A-LATHE1"]
    out = []
    n = lathe.good_count + lathe.scrap_count
    while p.t < hours * 3600:
        p.step()
        m = lathe.good_count + lathe.scrap_count
        if m != n:
            out.append(lathe.quality_value)
            n = m
    return out


def test_setpoint_change_shifts_the_quality_distribution(cfg, master) -> None:
    base = plant(cfg, master, lines=["A"])
    nominal = _lathe_quality(base, 6)
    changed = plant(cfg, master, lines=["A"])
    changed.run(60)
    assert changed.write_setpoint("A-LATHE1", "feed_sp", 0.25) is None  # at the upper limit
    shifted = _lathe_quality(changed, 6)
    assert len(nominal) > 100 and len(shifted) > 100
    tol = (20.025 - 19.975) / 2
    assert statistics.mean(shifted) - statistics.mean(nominal) > 0.3 * tol
    scrap = [e for e in changed.truth.events if e["event"] == "scrap"]
    assert any(e["cause"] == "setpoint:feed_sp" for e in scrap)


def test_out_of_limit_setpoint_is_refused_and_logged(cfg, master) -> None:
    p = plant(cfg, master, lines=["A"])
    err = p.write_setpoint("A-LATHE1", "speed_sp", 5000)
    assert err is not None and "limits" in err
    assert p.machines["A-LATHE1"].sp["speed_sp"].value == 1800
    assert p.truth.events[-1]["event"] == "setpoint_refused"


def test_held_lot_stops_and_released_lot_moves_on(cfg, master) -> None:
    p = plant(cfg, master, lines=["A"])
    p.run(600)
    lathe = p.machines["A-LATHE1"]
    lot = lathe.lot
    assert lot is not None
    assert p.command("A-LATHE1", {"cmd": "hold_lot", "lot": lot.id}) is None
    done = lot.done
    p.run(3600)
    assert lot.done == done and lot.held and lathe.lot is not lot
    assert lathe.lot is not None  # the lathe went on with the next lot
    assert p.command("A-LATHE1", json.dumps({"cmd": "release_lot", "lot": lot.id})) is None
    p.run(4 * 3600)
    assert lot.done > done or lot.step_idx > 0
    assert p.command("A-LATHE1", {"cmd": "fly"}) is not None
    assert p.command("A-LATHE1", "not json") is not None


def test_orders_flow_along_routing_and_consume_material(cfg, master) -> None:
    p = plant(cfg, master, lines=["A"])
    before = sum(p.line_side_stock("A").values())
    p.run(8 * 3600)
    events = [e["event"] for e in p.truth.events]
    assert "lot_completed" in events
    assert sum(p.line_side_stock("A").values()) < before
    wash = p.machines["A-WASH1"]
    assert wash.good_count > 0  # units reached the last step
    snap = p.machines["A-LATHE1"].snapshot()
    assert snap["operator"] in ("olga", "sam") and snap["recipe"].startswith("R-")


def test_a_bad_batch_raises_scrap_and_is_named_as_the_cause(cfg, master) -> None:
    scrap = []
    for bad in (set(), {"B-0010"}):  # B-0010 is line C's first line-side billet batch
        p = plant(cfg, master, seed=1, lines=["C"])
        p.bad_batches = bad
        p.run(5 * 3600)
        ext = p.machines["C-EXTR1"]
        assert ext.good_count > 300
        scrap.append((ext.scrap_count / (ext.good_count + ext.scrap_count), p.truth.events))
    assert scrap[1][0] > 3 * scrap[0][0] + 0.01
    causes = [e["cause"] for e in scrap[1][1] if e["event"] == "scrap"]
    assert causes.count("material_batch") > len(causes) / 2


def test_scale_knob_multiplies_the_plant_and_clients_can_load_its_tag_map(
        cfg, master, tmp_path) -> None:
    from core.config import load_config
    from sim.scale import scaled_config, write_scaled_config

    big = scaled_config(cfg, 10)
    assert len(big.tags) >= 2000
    regs = [t.spec.address for t in big.tags if t.spec.address.startswith("hr:")]
    assert len(regs) == len(set(regs))
    written = load_config(write_scaled_config(cfg, 10, tmp_path / "scaled.toml",
                                              opcua_port=4999, modbus_port=5999))
    assert [(t.id, t.spec.address) for t in written.tags] == [
        (t.id, t.spec.address) for t in big.tags]
    assert written.config.drivers["modbus"].port == 5999
    p = Plant(cfg, master, seed=1, start=START, scale=3, truth=TruthLog(None))
    assert len(p.machines) == 36 and "A-LATHE1-x3" in p.machines
    p.run(1800)
    assert p.machines["A-LATHE1-x3"].good_count > 0
    orders = {e["order"] for e in p.truth.events if e["event"] == "order_released"}
    assert {"PO-0001", "PO-10001", "PO-20001"} <= orders


@pytest.mark.parametrize("kind, eq, line, signal, direction", [
    ("tool", "A-LATHE1", "A", "current", +1),
    ("clog", "B-MOLD1", "B", "pressure", +1),
    ("clog", "B-MOLD1", "B", "flow", -1),
    ("heater", "B-DRY1", "B", "heater_offset", +1),
])
def test_each_degradation_has_its_signature_and_ends_in_failure(
        cfg, master, kind: str, eq: str, line: str, signal: str, direction: int) -> None:
    p = plant(cfg, master, lines=[line])
    p.inject(kind, eq, 3600)
    m = p.machines[eq]
    samples: list[tuple[int, float]] = []
    while p.t < 20 * 3600 and m.state != STATE_DOWN_UNPLANNED:
        p.step()
        if p.t % 60 == 0 and m.state == STATE_RUNNING:
            if signal == "heater_offset":
                value = abs(m.zone_temp - m.sp["temp_sp"].value)
            else:
                value = getattr(m, signal)
            samples.append((p.t, value))
    assert m.state == STATE_DOWN_UNPLANNED
    failure = next(e for e in p.truth.events if e["event"] == "failure")
    assert failure["kind"] == kind
    fail_t = p.t
    early = [v for t, v in samples if t < 3 * 3600]
    late = [v for t, v in samples if fail_t - 2 * 3600 <= t]
    assert early and late
    change = statistics.median(late) - statistics.median(early)
    assert change * direction > 0.1 * abs(statistics.median(early)) + 0.5
