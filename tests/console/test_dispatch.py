"""Pilot: dispatch from the console. `o` on a machine's row (Lines) or an order's row
(Orders) opens the dispatch dialog; a start there makes a machine without context tags
produce contextualized samples, counts and OEE; pause/complete from the same key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from console_seed import PINS

from console.app import LooplineApp
from console.screens.dialogs import SignInScreen
from console.screens.dispatch import DispatchScreen
from core.clock import FrozenClock
from core.config import LoadedConfig
from core.dispatch import current_dispatch
from core.history import history
from core.ingest.pipeline import IngestPipeline
from core.reports import oee_report
from core.samples import Quality, Sample
from core.store.db import Store, exec_sql

MakeApp = Callable[..., LooplineApp]
SIZE = (140, 40)
EQ = "A-LATHE1"


async def _ready(app: LooplineApp, pilot) -> None:
    for _ in range(3):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()


async def _sign_in(app: LooplineApp, pilot, user: str) -> None:
    await pilot.press("ctrl+l")
    await _ready(app, pilot)
    assert isinstance(app.screen, SignInScreen)
    await pilot.press(*user, "enter", *PINS[user], "enter")
    await _ready(app, pilot)


async def _to(app: LooplineApp, pilot, view: str, row: str) -> None:
    await pilot.press(":", *view, "enter")
    await _ready(app, pilot)
    app.table.move_cursor(row=app.table.get_row_index(row))
    await pilot.pause()


def _ingest(loaded: LoadedConfig, store: Store, clock: FrozenClock, tmp: Path) -> None:
    """A machine with no context tags at all, its line's context from dispatch."""
    loaded.config.lines[0].context_source = "dispatch"
    loaded.tags = [t for t in loaded.tags
                   if not (t.equipment_id == EQ and t.spec.kind == "context")]
    loaded.config.store.spill_dir = str(tmp / "spill")
    loaded.config.store.archive_dir = str(tmp / "history")
    t0 = clock.now()
    pipe = IngestPipeline(loaded, store, clock, flush_ms=20).start()

    def s(tag: str, sec: float, v: object) -> Sample:
        return Sample(f"{EQ}.{tag}", t0 + timedelta(seconds=sec), v, Quality.GOOD)
    try:
        pipe.handle([s("state", 1, 1), s("good_count", 1, 500), s("vibration_rms", 2, 2.0)])
        pipe.handle([s("good_count", 361, 508), s("vibration_rms", 362, 2.2)])
        assert pipe.writer.drain(30)
        assert pipe.maintain(archive=False).errors == []
    finally:
        pipe.close()


async def test_start_from_the_lines_view_contextualizes_samples_and_oee(
        make_app: MakeApp, store: Store, loaded_config: LoadedConfig,
        frozen_clock: FrozenClock, tmp_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await pilot.press("o")  # nobody signed in: not offered
        await _ready(app, pilot)
        assert not isinstance(app.screen, DispatchScreen)
        await _sign_in(app, pilot, "sam")
        await _to(app, pilot, "lines", EQ)
        assert app.check_action("dispatch", ()) is True
        await pilot.press("o")
        await _ready(app, pilot)
        dialog = app.screen
        assert isinstance(dialog, DispatchScreen)
        first = dialog.options[0]
        assert first.act == "start" and first.equipment_id == EQ
        # pick the first order, no lot given (the order's open lot or a new one), operator olga
        await pilot.press("enter")
        await pilot.press("enter")
        await _ready(app, pilot)
        op_box = dialog.query_one("#dispatch-operator")
        op_box.value = ""  # type: ignore[attr-defined]
        await pilot.press(*"olga", "enter")
        await _ready(app, pilot)
        assert not isinstance(app.screen, DispatchScreen)
        d = current_dispatch(store)[EQ]
        assert (d.order_id, d.operation_id, d.operator_id, d.status, d.updated_by) == (
            first.order_id, first.operation_id, "olga", "running", "sam")
    order = d.order_id
    _ingest(loaded_config, store, frozen_clock, tmp_path)
    t0 = frozen_clock.now()
    stamped = history(store, None, [f"{EQ}.vibration_rms"], t0,
                      t0 + timedelta(days=1)).select("order_id", "lot_id",
                                                     "operator_id").unique().rows()
    with store.begin() as conn:
        counts = exec_sql(conn,
            "SELECT order_id, lot_id, operation_id, sum(good) FROM production_count "
            "WHERE equipment_id = ? AND lot_id = ? GROUP BY 1, 2, 3", (EQ, d.lot_id)).fetchall()
    assert stamped == [(order, d.lot_id, "olga")]
    assert [tuple(r) for r in counts] == [(order, d.lot_id, d.operation_id, 8)]
    by_eq = {o.key: o for o in oee_report(store, "equipment", t0, t0 + timedelta(hours=1))}
    assert by_eq[EQ].good == 8 and by_eq[EQ].performance is not None


async def test_pause_and_complete_from_the_orders_view(make_app: MakeApp,
                                                       store: Store) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _sign_in(app, pilot, "olga")  # an operator may dispatch
        await _to(app, pilot, "lines", EQ)
        await pilot.press("o", "enter", "enter", "enter")  # start the first order as olga
        await _ready(app, pilot)
        d = current_dispatch(store)[EQ]
        await _to(app, pilot, "orders", d.order_id)
        await pilot.press("o")
        await _ready(app, pilot)
        dialog = app.screen
        assert isinstance(dialog, DispatchScreen)
        labels = [o.label for o in dialog.options]
        assert labels[:2] == [f"pause {d.operation_id} on {EQ}",
                              f"complete {d.operation_id} on {EQ} (lot {d.lot_id})"]
        await pilot.press("enter")  # pause: no lot or operator asked
        await _ready(app, pilot)
        assert current_dispatch(store)[EQ].status == "paused"
        await pilot.press("o", "down", "enter")  # complete
        await _ready(app, pilot)
        assert current_dispatch(store) == {}
    # a role that may not dispatch is not offered the key
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _sign_in(app, pilot, "quinn")
        await _to(app, pilot, "lines", EQ)
        assert app.check_action("dispatch", ()) is False
