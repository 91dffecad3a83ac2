"""MES dispatch as the context source: start/pause/resume/complete through the store,
stamped on every sample of the machine, driving lots, counts and operation quantities;
device tags ignored in ``dispatch`` mode and preferred in ``device_then_dispatch``."""

from __future__ import annotations

import pytest
from ingest_helpers import T0, sample

from core.auth import Authenticator, AuthError
from core.clock import FrozenClock
from core.config import LoadedConfig
from core.dispatch import Dispatcher, DispatchError, current_dispatch
from core.ingest.contextualizer import Contextualizer
from core.ingest.lots import register_lots
from core.production import ProductionTracker
from core.store.db import Store, exec_sql
from core.store.models import Lot, Operation, ProductionOrder

EQ = "A-LATHE1"


def _dispatcher(store: Store, loaded: LoadedConfig, clock: FrozenClock) -> Dispatcher:
    auth = Authenticator(store.engine, loaded.config.users, loaded.config.auth, clock)
    return Dispatcher(store, auth, clock)


def _users(loaded: LoadedConfig) -> dict[str, list[str]]:
    return {u.id: list(u.roles) for u in loaded.config.users}


def _user_with(loaded: LoadedConfig, role: str) -> str:
    return next(u for u, roles in _users(loaded).items() if role in roles)


def _user_without(loaded: LoadedConfig, roles: set[str]) -> str:
    return next(u for u, rs in _users(loaded).items() if not roles & set(rs))


def test_dispatch_stamps_samples_registers_lots_and_books_the_operation(
        store: Store, loaded_config: LoadedConfig, frozen_clock: FrozenClock) -> None:
    cz = Contextualizer(loaded_config.tags, context_source={EQ: "dispatch"})
    cz.refresh(store, now=T0)
    tr = ProductionTracker(loaded_config.tags)
    tr.load(store)
    disp = _dispatcher(store, loaded_config, frozen_clock)
    lead = _user_with(loaded_config, "shift_lead")
    op_user = _user_with(loaded_config, "operator")
    d = disp.start(lead, EQ, "PO-0001", operator_id=op_user)
    assert (d.order_id, d.operation_id, d.status, d.operator_id) == (
        "PO-0001", "PO-0001-10", "running", op_user)
    cz.apply_dispatch(current_dispatch(store), T0)
    # the twin's own lot tag is ignored on a machine whose context comes from dispatch
    got = cz.stamp([sample(f"{EQ}.lot", 1, 999), sample(f"{EQ}.good_count", 1, 100),
                    sample(f"{EQ}.good_count", 200, 105)])
    ctx = got[-1].ctx
    assert (ctx.order_id, ctx.operation_id, ctx.lot_id, ctx.recipe_id, ctx.operator_id,
            ctx.step) == ("PO-0001", "PO-0001-10", d.lot_id, "R-SH20", op_user, "10")
    tr.process(got)
    tr.flush(store)
    rep = register_lots(store, cz.drain_changes(), cz.contexts(), T0)
    assert rep.unknown_orders == 0
    with store.session() as s:
        op = s.get(Operation, "PO-0001-10")
        order = s.get(ProductionOrder, "PO-0001")
        lot = s.get(Lot, d.lot_id)
        assert op is not None and order is not None and lot is not None
        assert (op.status, op.equipment_id, op.qty_good) == ("running", EQ, 5)
        assert order.status == "in_progress"
        assert (lot.status, lot.equipment_id, lot.order_id) == ("wip", EQ, "PO-0001")
    # pause, resume, complete: the context ends with the operation
    frozen_clock.advance(60)
    assert disp.pause(op_user, EQ, reason="tool change").status == "paused"
    with pytest.raises(DispatchError, match="paused; pause needs it running"):
        disp.pause(op_user, EQ)
    assert disp.resume(op_user, EQ).status == "running"
    disp.complete(op_user, EQ)
    assert current_dispatch(store) == {}
    cz.apply_dispatch(current_dispatch(store), T0)
    after = cz.stamp([sample(f"{EQ}.good_count", 300, 106)])[0].ctx
    assert (after.order_id, after.lot_id, after.operation_id) == (None, None, None)
    with store.session() as s:
        op = s.get(Operation, "PO-0001-10")
        assert op is not None and op.status == "complete" and op.actual_end is not None
    with store.begin() as conn:
        acts = [r[0] for r in exec_sql(conn,
            "SELECT action FROM audit_entry WHERE action LIKE 'dispatch.%' ORDER BY seq")]
    assert acts == ["dispatch.start", "dispatch.pause", "dispatch.resume",
                    "dispatch.complete"]


def test_dispatch_refusals_are_plain_messages(store: Store, loaded_config: LoadedConfig,
                                              frozen_clock: FrozenClock) -> None:
    disp = _dispatcher(store, loaded_config, frozen_clock)
    lead = _user_with(loaded_config, "shift_lead")
    with pytest.raises(DispatchError, match="has no operation on A-LATHE1"):
        disp.start(lead, EQ, "PO-0003")  # a line B order
    with pytest.raises(DispatchError, match="unknown order"):
        disp.start(lead, EQ, "PO-9999")
    with pytest.raises(DispatchError, match="nothing is dispatched"):
        disp.complete(lead, EQ)
    outsider = _user_without(loaded_config, {"operator", "shift_lead", "admin"})
    with pytest.raises(AuthError, match="may not dispatch"):
        disp.start(outsider, EQ, "PO-0001")
    disp.start(lead, EQ, "PO-0001")
    with pytest.raises(DispatchError, match="runs PO-0001-10"):
        disp.start(lead, EQ, "PO-0002")
    loaded_config.config.auth.sign_dispatch = True
    with pytest.raises(AuthError, match="PIN"):
        disp.pause(lead, EQ)


def test_device_then_dispatch_prefers_the_device(store: Store, loaded_config: LoadedConfig,
                                                 frozen_clock: FrozenClock) -> None:
    cz = Contextualizer(loaded_config.tags, context_source={EQ: "device_then_dispatch"})
    cz.refresh(store, now=T0)
    disp = _dispatcher(store, loaded_config, frozen_clock)
    d = disp.start(_user_with(loaded_config, "shift_lead"), EQ, "PO-0001")
    cz.apply_dispatch(current_dispatch(store), T0)
    assert cz.context(EQ).lot_id == d.lot_id  # the device says nothing: dispatch fills in
    cz.stamp([sample(f"{EQ}.lot", 5, "L-00102"), sample(f"{EQ}.order", 5, "PO-0001")])
    cz.apply_dispatch(current_dispatch(store), T0)
    assert (cz.context(EQ).lot_id, cz.context(EQ).order_id) == ("L-00102", "PO-0001")
    # device mode (the default) ignores dispatch altogether
    dev = Contextualizer(loaded_config.tags)
    dev.refresh(store, now=T0)
    dev.stamp([sample(f"{EQ}.lot", 5, "L-00102")])
    dev.apply_dispatch(current_dispatch(store), T0)
    assert dev.context(EQ).lot_id == "L-00102" and not dev._dispatched
