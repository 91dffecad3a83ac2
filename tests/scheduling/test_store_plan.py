"""Plans from the store: build, activate, dispatch lists, event proposals, approval."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from console.cli import main
from core.clock import FrozenClock
from core.scheduling import service
from core.scheduling.feasibility import violations
from core.scheduling.store_adapter import (
    active_plan_row,
    build_problem,
    dispatch_list,
    load_plan,
    plan_items,
)
from core.store.db import Store
from core.store.models import Lot, Operation, PlanItem
from core.store.models import Plan as PlanRow

LIMIT = 1.0


def test_problem_from_master_data(store: Store, frozen_clock: FrozenClock) -> None:
    pp = build_problem(store, frozen_clock.now())
    p = pp.problem
    assert len(p.jobs) == 24
    assert p.now == 0  # the plant epoch is the frozen clock's start
    lathe = p.machines["A-LATHE1"]
    assert lathe.setups[("P-SH20", "P-SH25")] == 45
    assert lathe.unavailable and lathe.unavailable[0] == (int(13.5 * 60), int(14.5 * 60))
    molder_ops = [o for o in p.ops.values() if "B-MOLD1" in o.options]
    assert molder_ops and all(set(o.options) == {"B-MOLD1", "B-MOLD2"} for o in molder_ops)
    po1 = next(j for j in p.jobs if j.id == "PO-0001")
    assert po1.weight == 3  # priority 1
    assert po1.operations[0].options["A-LATHE1"] == 400 * 40 // 60 + 1  # 400 pcs x 40 s
    assert po1.operations[0].materials == ("M-ST20",)


def test_first_plan_is_computed_activated_and_dispatched(
    store: Store, frozen_clock: FrozenClock
) -> None:
    now = frozen_clock.now()
    first = service.current_plan(store, now, time_limit=LIMIT)
    assert first.created and "initial plan" in first.note
    again = service.current_plan(store, now, time_limit=LIMIT)
    assert (again.plan_id, again.created) == (first.plan_id, False)
    pp = build_problem(store, now)
    plan = load_plan(store, pp, first.plan_id)
    assert violations(pp.problem, plan) == []
    lst = dispatch_list(store, "A-LATHE1")
    assert lst and [i["start"] for i in lst] == sorted(i["start"] for i in lst)
    assert {i["equipment_id"] for i in lst} == {"A-LATHE1"}
    assert len(plan_items(store, first.plan_id)) == len(pp.problem.ops)
    with store.session() as s:
        op = s.get(Operation, lst[0]["operation_id"])
        assert op is not None and op.planned_start is not None
        assert op.planned_start.isoformat() == lst[0]["start"]


def test_breakdown_proposal_then_approval_supersedes(
    store: Store, frozen_clock: FrozenClock
) -> None:
    now = frozen_clock.now()
    first = service.current_plan(store, now, time_limit=LIMIT)
    lst = dispatch_list(store, "A-MILL1")
    victim = lst[1]
    from core.clock import parse_utc

    down_at = parse_utc(victim["start"]) - timedelta(minutes=10)
    pid, prop = service.propose_replan(
        store, [service.Down("A-MILL1", down_at, timedelta(hours=2))], now,
        time_limit=LIMIT)
    assert violations(prop.problem, prop.plan) == []
    assert victim["operation_id"] in prop.affected_ops
    assert victim["order_id"] in {c.job_id for c in prop.moved}
    with store.session() as s:
        row = s.get(PlanRow, pid)
        assert row is not None and row.status == "proposed"
        summary = json.loads(row.metrics)["proposal"]
    assert summary["weighted_tardiness_delta"] == prop.tardiness_delta
    assert active_plan_row(store).id == first.plan_id  # not active until approved
    service.approve(store, pid)
    assert active_plan_row(store).id == pid
    with store.session() as s:
        assert s.get(PlanRow, first.plan_id).status == "superseded"
        items = s.exec(select(PlanItem).where(PlanItem.plan_id == pid,
                                              PlanItem.equipment_id == "A-MILL1")).all()
    for it in items:  # nothing planned on the mill while it is down
        start = it.start - timedelta(minutes=it.setup_min)
        assert it.end <= down_at or start >= down_at + timedelta(hours=2)
    new_list = dispatch_list(store, "A-MILL1")
    assert [i["operation_id"] for i in new_list] == [
        i.operation_id for i in sorted(items, key=lambda i: i.start)]


def test_held_lot_in_store_leaves_the_plan(store: Store, frozen_clock: FrozenClock) -> None:
    with store.session() as s:
        lot = s.exec(select(Lot).where(Lot.order_id == "PO-0003")).first()
        assert lot is not None
        lot.status = "held"
        s.add(lot)
        s.commit()
    pp = build_problem(store, frozen_clock.now())
    assert pp.held_orders == ["PO-0003"]
    assert "PO-0003" not in {j.id for j in pp.problem.jobs}


def test_plan_cli_json_on_a_fresh_store(tmp_path: Path, config_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "fresh.db")
    rc = main(["plan", "--config", str(config_path), "--db", db, "--json", "--time-limit", "1"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["computed"] is True and "initial plan" in data["note"]
    assert data["plan"]["status"] == "active"
    assert data["items"] and {"equipment_id", "order_id", "start", "end"} <= set(data["items"][0])
    rc = main(["plan", "--config", str(config_path), "--db", db, "--json"])
    again = json.loads(capsys.readouterr().out)
    assert rc == 0 and again["computed"] is False
    assert again["plan"]["id"] == data["plan"]["id"]
    rc = main(["plan", "--config", str(config_path), "--db", db, "--json", "--replan",
               "--time-limit", "1"])
    replanned = json.loads(capsys.readouterr().out)
    assert rc == 0 and replanned["plan"]["id"] != data["plan"]["id"]
    assert replanned["plan"]["metrics"]["previous_plan"] == data["plan"]["id"]


def test_plan_bench_cli(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["plan", "bench", "--names", "ft06", "--time-limit", "2", "--json"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    (r,) = data["instances"]
    assert (r["name"], r["optimum"], r["makespan"], r["gap_pct"]) == ("ft06", 55, 55, 0.0)
    assert r["heuristic_makespan"] >= 55 and r["feasible"]


def test_plan_cli_user_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "bench", "--names", "ft06,nope"]) == 1
    err = capsys.readouterr().err
    assert "unknown instance(s): nope" in err and "Traceback" not in err
    assert main(["plan", "bench", "--time-limit", "0"]) == 1
    assert "--time-limit must be positive" in capsys.readouterr().err


def test_plan_cli_table_output(tmp_path: Path, config_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "t.db")
    rc = main(["plan", "--config", str(config_path), "--db", db, "--time-limit", "1",
               "--equipment", "B-PACK1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "computed an initial plan" in out and "Dispatch lists" in out
    assert "B-PACK1" in out and "A-LATHE1" not in out
    assert main(["plan", "--config", str(config_path), "--db", db, "--equipment", "NOPE"]) == 1
    assert "no equipment 'NOPE'" in capsys.readouterr().err


def test_stock_shortage_delays_the_steps_it_does_not_cover(
    store: Store, frozen_clock: FrozenClock
) -> None:
    from core.store.models import Stock

    pp = build_problem(store, frozen_clock.now())
    assert pp.material_short == {}  # the shipped master data has stock for every order
    with store.session() as s:
        for row in s.exec(select(Stock).where(Stock.material_id == "M-ST20")):
            row.quantity = 0.0
            s.add(row)
        s.commit()
    pp = build_problem(store, frozen_clock.now(), replenish_lead_min=480)
    short = {o for o, mats in pp.material_short.items() if "M-ST20" in mats}
    sh20 = {j.id for j in pp.problem.jobs if j.product == "P-SH20"}
    assert short == sh20 and short
    for j in pp.problem.jobs:
        if j.id in short:
            assert pp.problem.earliest(j.operations[0].id) >= 480


def test_a_stale_proposal_cannot_be_approved(store: Store, frozen_clock: FrozenClock) -> None:
    now = frozen_clock.now()
    service.current_plan(store, now, time_limit=LIMIT)
    down = service.Down("A-MILL1", now + timedelta(hours=3), timedelta(hours=1))
    p1, _ = service.propose_replan(store, [down], now, time_limit=0.5)
    p2, _ = service.propose_replan(store, [down], now, time_limit=0.5)
    service.approve(store, p2)
    with pytest.raises(ValueError, match="re-plan again"):
        service.approve(store, p1)
    assert active_plan_row(store).id == p2
