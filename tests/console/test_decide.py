"""Pilot tests of sign-in, approve and reject with e-signatures, roles, and alarm handling."""

from __future__ import annotations

from collections.abc import Callable

from console_seed import PINS
from sqlmodel import select

from console.app import LooplineApp
from console.screens.details import LotScreen, RecommendationScreen
from console.screens.dialogs import ActionDialog, SignInScreen
from console.widgets.snapshot_table import SnapshotTable
from core.alarms import AlarmManager
from core.clock import FrozenClock
from core.store.db import Store
from core.store.models import Action, Alarm, AuditEntry, Decision, Recommendation

MakeApp = Callable[..., LooplineApp]
SIZE = (140, 40)


async def _ready(app: LooplineApp, pilot) -> None:
    for _ in range(3):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()


async def _sign_in(app: LooplineApp, pilot, user: str, pin: str | None = None) -> None:
    await pilot.press("ctrl+l")
    await _ready(app, pilot)
    assert isinstance(app.screen, SignInScreen)
    await pilot.press(*user, "enter", *(pin or PINS[user]), "enter")
    await _ready(app, pilot)


async def _to(app: LooplineApp, pilot, view: str, row: str | None = None) -> SnapshotTable:
    await pilot.press(":", *view, "enter")
    await _ready(app, pilot)
    table = app.table
    if row is not None:
        table.move_cursor(row=table.get_row_index(row))
        await pilot.pause()
    return table


async def test_sign_in_good_pin_shows_user_and_role(make_app: MakeApp) -> None:
    app = make_app(sign_in_at_start=True)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        assert isinstance(app.screen, SignInScreen)
        await pilot.press(*"sam", "enter", *"2222", "enter")
        await _ready(app, pilot)
        assert not isinstance(app.screen, SignInScreen)
        assert app.identity is not None and app.identity.user_id == "sam"
        status = str(app.query_one("#status").render())
        assert "sam" in status and "shift_lead" in status


async def test_sign_in_wrong_pin_says_so_and_locks_out(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _sign_in(app, pilot, "sam", "0000")
        assert isinstance(app.screen, SignInScreen)
        err = str(app.screen.query_one("#dialog-error").render())
        assert "wrong PIN" in err and "4 attempt(s) left" in err
        assert app.identity is None
        for _ in range(4):  # the fifth wrong PIN locks sam out
            await pilot.press(*"0000", "enter")
            await _ready(app, pilot)
        err = str(app.screen.query_one("#dialog-error").render())
        assert "locked out" in err
        await pilot.press(*"2222", "enter")  # even the right PIN is refused now
        await _ready(app, pilot)
        assert "locked out" in str(app.screen.query_one("#dialog-error").render())
        await pilot.press("escape")
        await _ready(app, pilot)
        assert app.identity is None
        assert "not signed in" in str(app.query_one("#status").render())


async def test_approve_with_pin_writes_decision_and_outbox_action(
    make_app: MakeApp, store: Store
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _sign_in(app, pilot, "maya")
        await _to(app, pilot, "actions", "R-0001")
        assert app.check_action("approve", ()) is True
        await pilot.press("a")
        await _ready(app, pilot)
        assert isinstance(app.screen, ActionDialog)
        body = "\n".join(str(w.render()) for w in app.screen.query("#dialog-body Static"))
        for words in ("create work order", "A-LATHE1", "fault_mode = bearing",
                      "avoids ~6 h unplanned downtime", "bearing temperature rising"):
            assert words in body, words
        await pilot.press(*"in the next window", "enter")  # comment, then the PIN
        await pilot.press(*"3333", "enter")
        await _ready(app, pilot)
        assert not isinstance(app.screen, ActionDialog)
        with store.session() as s:
            rec = s.get(Recommendation, "R-0001")
            dec = s.exec(select(Decision).where(Decision.recommendation_id == "R-0001")).one()
            act = s.exec(select(Action).where(Action.recommendation_id == "R-0001")).one()
        assert rec is not None and rec.status == "approved"
        assert (dec.verdict, dec.user_id, dec.signed_name) == ("approved", "maya",
                                                                "Maya Lindqvist")
        assert dec.comment == "in the next window"
        assert (act.kind, act.status) == ("create_work_order", "pending")
        # the row shows the result in place: approved, queued
        table = app.query_one("#view-actions", SnapshotTable)
        assert str(table.get_cell("R-0001", "status")) == "approved"
        assert str(table.get_cell("R-0001", "result")) == "queued"
        assert app.check_action("approve", ()) is False  # decided: no longer offered
        # the decision reached the event log through the bus
        assert any(e.kind == "decision" and e.recommendation_id == "R-0001"
                   for e in app.events)


async def test_approve_wrong_pin_is_refused_in_the_dialog(make_app: MakeApp,
                                                          store: Store) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _sign_in(app, pilot, "maya")
        await _to(app, pilot, "actions", "R-0001")
        await pilot.press("a")
        await _ready(app, pilot)
        await pilot.press("enter", *"1234", "enter")
        await _ready(app, pilot)
        assert isinstance(app.screen, ActionDialog)
        assert "wrong PIN" in str(app.screen.query_one("#dialog-error").render())
        with store.session() as s:
            assert s.get(Recommendation, "R-0001").status == "proposed"  # type: ignore[union-attr]


async def test_second_signature_within_idle_timeout_needs_no_pin_then_needs_it_again(
    make_app: MakeApp, frozen_clock: FrozenClock
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _sign_in(app, pilot, "ada")  # admin: may decide every class
        await _to(app, pilot, "actions", "R-0001")
        await pilot.press("a")
        await _ready(app, pilot)
        await pilot.press("enter", *"9999", "enter")
        await _ready(app, pilot)
        assert app.needs_pin() is False
        await _to(app, pilot, "actions", "R-0002")
        await pilot.press("a")
        await _ready(app, pilot)
        assert isinstance(app.screen, ActionDialog) and not app.screen.ask_pin
        await pilot.press("escape")
        frozen_clock.advance(400)  # past signature_idle_timeout_s = 300
        assert app.needs_pin() is True


async def test_reject_with_reason(make_app: MakeApp, store: Store) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _sign_in(app, pilot, "quinn")
        await _to(app, pilot, "actions", "R-0002")
        await pilot.press("r")
        await _ready(app, pilot)
        assert isinstance(app.screen, ActionDialog)
        await pilot.press("down", "enter")  # not_now
        await pilot.press(*"lab confirms in spec", "enter", *"4444", "enter")
        await _ready(app, pilot)
        assert not isinstance(app.screen, ActionDialog)
        with store.session() as s:
            dec = s.exec(select(Decision).where(Decision.recommendation_id == "R-0002")).one()
            assert s.get(Recommendation, "R-0002").status == "rejected"  # type: ignore[union-attr]
        assert (dec.verdict, dec.reason, dec.comment) == ("rejected", "not_now",
                                                           "lab confirms in spec")
        assert str(app.table.get_cell("R-0002", "status")) == "rejected"


async def test_unauthorised_role_is_not_offered_approve(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _to(app, pilot, "actions", "R-0001")
        assert app.check_action("approve", ()) is False  # nobody signed in
        await _sign_in(app, pilot, "olga")  # operator: decides nothing
        await _to(app, pilot, "actions", "R-0001")
        assert app.check_action("approve", ()) is False
        assert app.check_action("reject", ()) is False
        footer_keys = {b.action for _, b, enabled, *_ in app.active_bindings.values()
                       if enabled}
        assert "approve" not in footer_keys
        await pilot.press("a")  # the key does nothing: no dialog
        await _ready(app, pilot)
        assert not isinstance(app.screen, ActionDialog)
        await _sign_in(app, pilot, "maya")  # maintenance: work orders yes, lot holds no
        await _to(app, pilot, "actions", "R-0001")
        assert app.check_action("approve", ()) is True
        await _to(app, pilot, "actions", "R-0002")
        assert app.check_action("approve", ()) is False


async def test_enter_on_recommendation_shows_evidence(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _to(app, pilot, "actions", "R-0003")
        await pilot.press("enter")
        await _ready(app, pilot)
        assert isinstance(app.screen, RecommendationScreen)
        text = str(app.screen.query_one("#detail-text").render())
        assert "zone_temp raises risk by 0.8" in text
        assert "predicted scrap risk" in text
        await pilot.press("escape")
        await pilot.press(":", *"lots", "enter")
        await _ready(app, pilot)
        await pilot.press("enter")
        await _ready(app, pilot)
        assert isinstance(app.screen, LotScreen)
        assert "batch B-0001 (M-ST20)" in str(app.screen.query_one("#detail-text").render())


async def test_alarm_acknowledge(make_app: MakeApp, store: Store) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _to(app, pilot, "alarms", "1")
        assert app.check_action("acknowledge", ()) is False  # not signed in
        await _sign_in(app, pilot, "sam")
        await _to(app, pilot, "alarms", "1")
        assert app.check_action("acknowledge", ()) is True
        await pilot.press("k")
        await _ready(app, pilot)
        with store.session() as s:
            alarm = s.get(Alarm, 1)
        assert alarm is not None and alarm.acked and alarm.acked_by == "sam"
        assert str(app.table.get_cell("1", "acked")) == "yes"
        assert app.check_action("acknowledge", ()) is False
        assert any(e.kind == "alarm" and e.detail.get("actor") == "sam" for e in app.events)


async def test_alarm_shelve_for_an_hour(make_app: MakeApp, store: Store,
                                        seeded: AlarmManager,
                                        frozen_clock: FrozenClock) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _sign_in(app, pilot, "sam")
        await _to(app, pilot, "alarms", "2")
        await pilot.press("s")
        await _ready(app, pilot)
        assert isinstance(app.screen, ActionDialog)
        await pilot.press("down", "down", "enter")  # 1 h
        await pilot.press("enter")  # no reason: refused in the dialog
        await _ready(app, pilot)
        assert "needs a reason" in str(app.screen.query_one("#dialog-error").render())
        await pilot.press(*"sensor swap in progress", "enter")
        await _ready(app, pilot)
        assert not isinstance(app.screen, ActionDialog)
        rec = seeded.get(2)
        assert rec is not None and rec.shelve_mode == "timed"
        assert (rec.shelved_until - frozen_clock.now()).total_seconds() == 3600
        with store.session() as s:
            audit = s.exec(select(AuditEntry).where(AuditEntry.action == "alarm.shelve")).one()
        assert audit.actor == "sam" and "sensor swap" in audit.detail
        assert app.check_action("shelve", ()) is False  # already shelved


async def test_alarms_read_only_without_manager(make_app: MakeApp) -> None:
    app = make_app(alarms=None)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _sign_in(app, pilot, "sam")
        await _to(app, pilot, "alarms", "1")
        assert "read-only" in str(app.query_one("#view-title").render())
        assert app.check_action("acknowledge", ()) is False
        assert app.check_action("shelve", ()) is False


async def test_sign_in_tab_moves_from_user_to_pin(make_app: MakeApp) -> None:
    app = make_app(sign_in_at_start=True)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await pilot.press(*"sam", "tab", *"2222", "enter")
        await _ready(app, pilot)
        assert app.identity is not None and app.identity.user_id == "sam"


async def test_approve_dialog_at_80x24_shows_the_whole_record_before_it_signs(
    make_app: MakeApp, store: Store
) -> None:
    """At 80×24 the record scrolls; the fields and the hint stay on screen, and a PIN typed
    before the record was read to its end signs nothing."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(app, pilot)
        await _sign_in(app, pilot, "maya")
        await _to(app, pilot, "actions", "R-0001")
        await pilot.press("a")
        await _ready(app, pilot)
        dlg = app.screen
        assert isinstance(dlg, ActionDialog)
        frame = dlg.query_one("#dialog").region
        for wid in ("#dialog-pin", "#dialog-text", "#dialog-hint"):
            region = dlg.query_one(wid).region
            assert region.height > 0 and region.bottom <= frame.bottom - 1, (wid, region, frame)
        assert "Enter signs" in str(dlg.query_one("#dialog-hint").render())
        body = dlg.query_one("#dialog-body")
        assert body.max_scroll_y > 0  # the record is longer than its rows here
        assert "more line(s) below · PgDn reads on" in str(dlg.query_one("#dialog-seen").render())
        await pilot.press("enter", *"3333", "enter")
        await _ready(app, pilot)
        assert isinstance(app.screen, ActionDialog) and not dlg.seen_end
        assert "read the whole record" in str(dlg.query_one("#dialog-error").render())
        with store.session() as s:
            assert s.get(Recommendation, "R-0001").status == "proposed"  # type: ignore[union-attr]
        for _ in range(6):
            await pilot.press("pagedown")
        await pilot.pause()
        assert dlg.seen_end
        rec_text = str(dlg.query_one("#dialog-record").render())
        assert "bound to this record's hash" in rec_text
        await pilot.press("enter")  # the PIN is still in its box
        await _ready(app, pilot)
        assert not isinstance(app.screen, ActionDialog)
        with store.session() as s:
            assert s.get(Recommendation, "R-0001").status == "approved"  # type: ignore[union-attr]


async def test_lapsed_and_finished_rows_stay_visible_with_their_state(
    make_app: MakeApp, store: Store, frozen_clock: FrozenClock
) -> None:
    """An expired recommendation stays in the queue marked expired; a released hold and a
    finished work order keep their rows a while, saying so; an open detail page follows
    its recommendation's status."""
    from sqlalchemy import insert, update

    from core.store.models import Hold, HoldLot, WorkOrder

    now = frozen_clock.now()
    with store.begin() as c:
        c.execute(insert(Hold.__table__).values(id="NCR-7", reason="diameter", status="open",
                                                created_at=now, created_by="quinn"))
        c.execute(insert(HoldLot.__table__).values(hold_id="NCR-7", lot_id="L-00101"))
        c.execute(insert(WorkOrder.__table__).values(
            id="WO-9", kind="predictive", equipment_id="A-LATHE1", fault_mode="bearing",
            status="open", created_at=now, priority=1))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _sign_in(app, pilot, "quinn")
        table = await _to(app, pilot, "holds", "NCR-7")
        await pilot.press("d")
        await _ready(app, pilot)
        await pilot.press("enter", *"ok", "enter", "enter")  # disposition, note, no PIN
        await _ready(app, pilot)
        assert str(table.get_cell("NCR-7", "release")).startswith("release asked (use_as_is)")
        rid = next(r.id for r in app.snapshot.recommendations
                   if r.decision_class == "lot_release")
        with store.begin() as c:  # the release executes: the hold closes
            c.execute(update(Recommendation.__table__).where(
                Recommendation.__table__.c.id == rid).values(status="executed"))
            c.execute(update(Hold.__table__).values(status="closed", closed_at=now))
            c.execute(update(WorkOrder.__table__).values(status="done", completed_at=now))
            c.execute(update(Recommendation.__table__).where(
                Recommendation.__table__.c.id == "R-0002").values(status="expired",
                                                                   updated_at=now))
        app.refresh_snapshot()
        await _ready(app, pilot)
        assert "NCR-7" in table.shown_keys
        assert str(table.get_cell("NCR-7", "status")) == "closed"
        assert str(table.get_cell("NCR-7", "release")).startswith("released (use_as_is)")
        assert app.snapshot.counts["open_holds"] == 0
        wo = await _to(app, pilot, "wo")
        assert "WO-9" in wo.shown_keys and str(wo.get_cell("WO-9", "status")) == "done"
        recs = await _to(app, pilot, "actions", "R-0002")
        assert str(recs.get_cell("R-0002", "status")) == "expired"
        # the detail page of R-0001 follows its status
        recs.move_cursor(row=recs.get_row_index("R-0001"))
        await pilot.press("enter")
        await _ready(app, pilot)
        assert isinstance(app.screen, RecommendationScreen)
        assert "queues this action" in str(app.screen.query_one("#detail-text").render())
        with store.begin() as c:
            c.execute(update(Recommendation.__table__).where(
                Recommendation.__table__.c.id == "R-0001").values(status="executed"))
        app.refresh_snapshot()
        await _ready(app, pilot)
        await _ready(app, pilot)
        text = str(app.screen.query_one("#detail-text").render())
        assert "is executed" in text and "queues this action" not in text


async def test_a_blocked_key_says_why(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _to(app, pilot, "actions", "R-0001")
        await pilot.press("a")
        await _ready(app, pilot)
        assert "sign in first" in list(app._notifications)[-1].message
        await _sign_in(app, pilot, "olga")  # an operator may not decide work orders
        await _to(app, pilot, "actions", "R-0001")
        await pilot.press("a")
        await _ready(app, pilot)
        assert not isinstance(app.screen, ActionDialog)
        msg = list(app._notifications)[-1].message
        assert msg.startswith("Approve: work_order needs maintenance"), msg
        await _to(app, pilot, "alarms")
        await pilot.press("s")  # shelving is the shift lead's
        await _ready(app, pilot)
        assert list(app._notifications)[-1].message == "Shelve: shelve needs shift_lead or admin"
