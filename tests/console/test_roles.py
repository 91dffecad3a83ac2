"""Pilot tests of what each role is offered: quality disposes holds, maintenance signs work
orders off, only shift leads and admins shelve alarms; and driver state in the Data column."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from console_seed import PINS
from rich.text import Text
from sqlalchemy import insert
from sqlmodel import select

from console.app import LooplineApp
from console.formatting import connection_text, live_window_s
from console.screens.dialogs import ActionDialog
from console.widgets.snapshot_table import SnapshotTable
from core.clock import FrozenClock
from core.events import ConnectionEvent, EventBus
from core.store.db import Store
from core.store.models import Action, AuditEntry, Decision, Hold, HoldLot, Recommendation, WorkOrder

MakeApp = Callable[..., LooplineApp]
SIZE = (140, 40)


async def _ready(app: LooplineApp, pilot) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()


async def _sign_in(app: LooplineApp, pilot, user: str) -> None:  # type: ignore[no-untyped-def]
    await pilot.press("ctrl+l")
    await _ready(app, pilot)
    await pilot.press(*user, "enter", *PINS[user], "enter")
    await _ready(app, pilot)
    assert app.identity is not None and app.identity.user_id == user


async def _to(app: LooplineApp, pilot, view: str, row: str) -> SnapshotTable:  # type: ignore[no-untyped-def]
    await pilot.press(":", *view, "enter")
    await _ready(app, pilot)
    table = app.table
    table.move_cursor(row=table.get_row_index(row))
    await pilot.pause()
    return table


def _hold_and_work_order(store: Store, clock: FrozenClock) -> None:
    now = clock.now()
    with store.begin() as c:
        c.execute(insert(Hold.__table__).values(  # type: ignore[attr-defined]
            id="H-0001", reason="diameter above USL on A-GRIND1", status="open",
            created_by="quinn", created_at=now - timedelta(minutes=20)))
        c.execute(insert(HoldLot.__table__).values(  # type: ignore[attr-defined]
            hold_id="H-0001", lot_id="L-00101"))
        c.execute(insert(WorkOrder.__table__).values(  # type: ignore[attr-defined]
            id="WO-0001", kind="predictive", equipment_id="A-LATHE1", fault_mode="bearing",
            status="scheduled", created_at=now - timedelta(hours=1)))


# ---------------------------------------------------------------- connection state


async def test_driver_down_on_the_bus_shows_in_data_column_and_status_bar(
    make_app: MakeApp, frozen_clock: FrozenClock
) -> None:
    bus = EventBus()
    app = make_app(bus=bus)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        table = app.query_one("#view-lines", SnapshotTable)
        assert str(table.get_cell("A-LATHE1", "conn")) == "live"
        # drivers stamp `since` with the wall clock: two minutes ago
        since = (datetime.now(UTC) - timedelta(minutes=2)).isoformat()
        bus.publish(ConnectionEvent(frozen_clock.now(), "opcua: reconnecting",
                                    driver_id="opcua", state="reconnecting", since=since,
                                    error="connection refused"))
        bus.publish(ConnectionEvent(frozen_clock.now(), "modbus: connected",
                                    driver_id="modbus", state="connected", since=since))
        await _ready(app, pilot)
        cell = table.get_cell("A-LATHE1", "conn")
        assert isinstance(cell, Text) and cell.plain == "comm down 2m" and "red" in str(cell.style)
        assert str(table.get_cell("B-MOLD1", "conn")) == "comm down 2m"  # line B: OPC UA too
        assert "comm down" not in str(table.get_cell("C-EXTR1", "conn"))  # line C: Modbus
        status = str(app.query_one("#status").render())
        assert "opcua down 2m" in status and "modbus ok" in status
        bus.publish(ConnectionEvent(frozen_clock.now(), "opcua: connected", driver_id="opcua",
                                    state="connected", since=datetime.now(UTC).isoformat()))
        await _ready(app, pilot)
        assert str(table.get_cell("A-LATHE1", "conn")) == "live"  # per-tag freshness again


async def test_freshness_is_measured_when_the_store_was_read(
    make_app: MakeApp, frozen_clock: FrozenClock
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        frozen_clock.advance(40)  # plant time moves on before the next read...
        app._show_tables("lines")  # ...and the table is redrawn (OEE, events)
        table = app.query_one("#view-lines", SnapshotTable)
        assert str(table.get_cell("A-LATHE1", "conn")) == "live"
        app.refresh_snapshot()  # a new read 40 s later: the last sample is 45 s old
        await _ready(app, pilot)
        assert str(table.get_cell("A-LATHE1", "conn")) == "silent 45s"


def test_live_window_scales_with_twin_speed() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert live_window_s(1.0) == 15.0
    assert live_window_s(120.0) == 240.0  # 2 s of wall-clock pipeline latency at 120x
    last = at - timedelta(seconds=40)
    assert connection_text(last, at, live_s=live_window_s(120.0)).plain == "live"
    assert connection_text(last, at, live_s=live_window_s(1.0)).plain == "silent 40s"


# ---------------------------------------------------------------- quality


async def test_quality_disposes_a_hold_and_signs_the_release(
    make_app: MakeApp, store: Store, frozen_clock: FrozenClock
) -> None:
    _hold_and_work_order(store, frozen_clock)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _sign_in(app, pilot, "quinn")
        await _to(app, pilot, "holds", "H-0001")
        assert app.check_action("disposition", ()) is True
        await pilot.press("d")
        await _ready(app, pilot)
        assert isinstance(app.screen, ActionDialog) and app.screen.ask_pin
        await pilot.press("down", "down", "enter")  # scrap
        await pilot.press(*"diameter out of tolerance", "enter", *"4444", "enter")
        await _ready(app, pilot)
        assert not isinstance(app.screen, ActionDialog)
        with store.session() as s:
            rec = s.exec(select(Recommendation)
                         .where(Recommendation.decision_class == "lot_release")).one()
            dec = s.exec(select(Decision).where(Decision.recommendation_id == rec.id)).one()
            act = s.exec(select(Action).where(Action.recommendation_id == rec.id)).one()
        assert (rec.target, rec.action, rec.status) == ("H-0001", "release_lots", "approved")
        assert '"disposition": "scrap"' in rec.params and "tolerance" in rec.params
        assert (dec.verdict, dec.user_id) == ("approved", "quinn")
        assert (act.kind, act.status) == ("release_lots", "pending")
        assert "scrap" in str(app.table.get_cell("H-0001", "release"))
        assert app.check_action("disposition", ()) is False  # asked once, not twice


async def test_disposition_without_pin_only_requests_and_is_for_quality_only(
    make_app: MakeApp, store: Store, frozen_clock: FrozenClock
) -> None:
    _hold_and_work_order(store, frozen_clock)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _sign_in(app, pilot, "sam")  # shift lead: not offered
        await _to(app, pilot, "holds", "H-0001")
        assert app.check_action("disposition", ()) is False
        await pilot.press("d")
        await _ready(app, pilot)
        assert not isinstance(app.screen, ActionDialog)
        await _sign_in(app, pilot, "quinn")
        await _to(app, pilot, "holds", "H-0001")
        await pilot.press("d")
        await _ready(app, pilot)
        await pilot.press("enter", *"ok after re-measure", "enter", "enter")  # use as is, no PIN
        await _ready(app, pilot)
        assert not isinstance(app.screen, ActionDialog)
        with store.session() as s:
            rec = s.exec(select(Recommendation)
                         .where(Recommendation.decision_class == "lot_release")).one()
            assert rec.status == "proposed" and rec.required_role == "quality"
            assert not s.exec(select(Decision).where(Decision.recommendation_id == rec.id)).all()
        assert any(e.kind == "recommendation" and e.recommendation_id == rec.id
                   for e in app.events)


# ---------------------------------------------------------------- maintenance


async def test_maintenance_signs_a_work_order_off_into_the_outbox(
    make_app: MakeApp, store: Store, frozen_clock: FrozenClock
) -> None:
    _hold_and_work_order(store, frozen_clock)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _sign_in(app, pilot, "quinn")  # quality may not decide work orders
        await _to(app, pilot, "wo", "WO-0001")
        assert app.check_action("complete_work_order", ()) is False
        await _sign_in(app, pilot, "maya")
        await _to(app, pilot, "wo", "WO-0001")
        assert app.check_action("complete_work_order", ()) is True
        await pilot.press("c")
        await _ready(app, pilot)
        assert isinstance(app.screen, ActionDialog)
        await pilot.press(*"1234", "enter")  # wrong PIN: refused in the dialog
        await _ready(app, pilot)
        assert "wrong PIN" in str(app.screen.query_one("#dialog-error").render())
        await pilot.press(*"3333", "enter")
        await _ready(app, pilot)
        assert not isinstance(app.screen, ActionDialog)
        with store.session() as s:
            act = s.exec(select(Action).where(Action.kind == "complete_work_order")).one()
            audit = s.exec(select(AuditEntry)
                           .where(AuditEntry.action == "work_order.completion_signed")).one()
            wo = s.get(WorkOrder, "WO-0001")
        assert act.status == "pending" and '"work_order_id": "WO-0001"' in act.params
        assert audit.actor == "maya" and "Maya Lindqvist" in audit.detail
        assert wo is not None and wo.status == "scheduled"  # the runtime completes it
        assert str(app.table.get_cell("WO-0001", "done")) == "signed, queued"
        assert app.check_action("complete_work_order", ()) is False


# ---------------------------------------------------------------- alarms by role


async def test_operator_acknowledges_but_cannot_shelve(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _sign_in(app, pilot, "olga")
        await _to(app, pilot, "alarms", "2")
        assert app.check_action("acknowledge", ()) is True
        assert app.check_action("shelve", ()) is False
        await pilot.press("s")
        await _ready(app, pilot)
        assert not isinstance(app.screen, ActionDialog)
        await _sign_in(app, pilot, "quinn")
        await _to(app, pilot, "alarms", "2")
        assert app.check_action("acknowledge", ()) is True
        assert app.check_action("shelve", ()) is False
        await _sign_in(app, pilot, "sam")
        await _to(app, pilot, "alarms", "2")
        assert app.check_action("shelve", ()) is True
