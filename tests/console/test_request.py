"""Pilot: `w` on the equipment page asks for a setpoint change; the requester's own
approval is refused by the four-eyes rule in the dialog, a second person's queues it."""

from __future__ import annotations

import json
from collections.abc import Callable

from console_seed import PINS
from sqlmodel import select

from console.app import LooplineApp
from console.screens.dialogs import ActionDialog, SignInScreen
from console.screens.equipment import EquipmentScreen
from console.screens.request import RequestScreen
from core.dispatch import Dispatcher
from core.store.db import Store
from core.store.models import Action, Recommendation

MakeApp = Callable[..., LooplineApp]
SIZE = (140, 40)


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


async def test_setpoint_request_from_the_equipment_page_and_four_eyes(
        make_app: MakeApp, store: Store) -> None:
    app = make_app()
    app.deps.config.config.autonomy.four_eyes = ["setpoint"]
    # what runs on the machine (its recipe's limits apply): an order dispatched there
    Dispatcher(store, app.auth, app.deps.clock).start("sam", "A-LATHE1", "PO-0001")
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await _sign_in(app, pilot, "quinn")
        await pilot.press(":", *"eq A-LATHE1", "enter")
        await _ready(app, pilot)
        assert isinstance(app.screen, EquipmentScreen)
        await pilot.press("w")
        await _ready(app, pilot)
        dialog = app.screen
        assert isinstance(dialog, RequestScreen)
        assert dialog.choices[0].kind == "setpoint"
        name = dialog.choices[0].name
        await pilot.press("enter")  # the first setpoint
        await pilot.press(*"9999", "enter", *"trial", "enter", *PINS["quinn"], "enter")
        await _ready(app, pilot)
        assert isinstance(app.screen, RequestScreen)  # refused in the dialog: out of recipe
        assert "outside the recipe limits" in str(dialog.query_one("#dialog-error").render())
        value = dialog.query_one("#request-value")
        value.value = ""  # type: ignore[attr-defined]
        value.focus()
        want = "1850" if name == "speed_sp" else "0.21"
        await pilot.press(*want, "enter", "enter", *PINS["quinn"], "enter")
        await _ready(app, pilot)
        assert not isinstance(app.screen, RequestScreen)
        with store.session() as s:
            [rec] = s.exec(select(Recommendation).where(
                Recommendation.problem_key == f"request:setpoint:A-LATHE1.{name}")).all()
        assert json.loads(rec.evidence)["requested_by"] == "quinn"
        assert rec.status == "proposed"
        await pilot.press("escape")
        await _ready(app, pilot)
        # quinn may decide setpoints, but not his own request
        await pilot.press(":", *"actions", "enter")
        await _ready(app, pilot)
        app.table.move_cursor(row=app.table.get_row_index(rec.id))
        await pilot.pause()
        await pilot.press("a")
        await _ready(app, pilot)
        assert isinstance(app.screen, ActionDialog)
        await pilot.press("enter", *PINS["quinn"], "enter")
        await _ready(app, pilot)
        assert "four-eyes" in str(app.screen.query_one("#dialog-error").render())
        await pilot.press("escape")
        await _ready(app, pilot)
        app.sign_out()
        await _sign_in(app, pilot, "sam")
        await pilot.press(":", *"actions", "enter")
        await _ready(app, pilot)
        app.table.move_cursor(row=app.table.get_row_index(rec.id))
        await pilot.pause()
        await pilot.press("a")
        await _ready(app, pilot)
        await pilot.press("enter", *PINS["sam"], "enter")
        await _ready(app, pilot)
        assert not isinstance(app.screen, ActionDialog)
    with store.session() as s:
        [act] = s.exec(select(Action).where(Action.recommendation_id == rec.id)).all()
    assert act.kind == "write_setpoint" and json.loads(act.params)["approved_by"] == "sam"
