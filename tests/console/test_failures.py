"""Auto-approved actions that fail again and again: counted in the top line, and an alarm
once the same action on the same target failed three times (it cleared on a success)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import insert

from console.app import LooplineApp
from core.alarms import AlarmManager
from core.clock import FrozenClock
from core.events import EventBus, ExecutionEvent
from core.store.db import Store
from core.store.models import Action
from runtime.action_alarms import FailedActionWatch

MakeApp = Callable[..., LooplineApp]
WHY = "C-EXTR1 (modbus) has no command code for replenish"


async def _ready(app: LooplineApp, pilot) -> None:
    for _ in range(3):
        await pilot.pause()
        await app.workers.wait_for_complete()


async def test_repeated_failed_replenishment_is_counted_and_alarmed(
    make_app: MakeApp, store: Store, frozen_clock: FrozenClock, seeded: AlarmManager
) -> None:
    bus = EventBus()
    bus.subscribe(FailedActionWatch(seeded, bus.publish))
    app = make_app(bus=bus)
    async with app.run_test(size=(160, 40)) as pilot:
        await _ready(app, pilot)
        assert "failed" not in str(app.query_one("#status").render())
        for i in range(3):
            now = frozen_clock.now() + timedelta(minutes=i)
            with store.begin() as c:
                c.execute(insert(Action.__table__).values(
                    kind="replenish", params="{}", idempotency_key=f"rep-{i}",
                    status="failed", attempts=1, result=json.dumps({"error": WHY}),
                    created_at=now, finished_at=now))
            bus.publish(ExecutionEvent(now, f"replenish #{i} failed: {WHY}",
                                       equipment_id="C-EXTR1", line_id="C", action_id=i,
                                       action="replenish", status="failed",
                                       detail={"error": WHY}))
            await _ready(app, pilot)
            app.refresh_snapshot()
            await _ready(app, pilot)
            alarms = [a for a in app.snapshot.alarms if a.source.startswith("action_failing")]
            assert bool(alarms) == (i == 2), i  # the third failure raises it, once
        assert "failed 3" in str(app.query_one("#status").render())
        (alarm,) = alarms
        assert alarm.priority == "high" and "failed 3 times" in alarm.message
        assert WHY in alarm.message
        bus.publish(ExecutionEvent(frozen_clock.now() + timedelta(minutes=5), "replenish done",
                                   equipment_id="C-EXTR1", line_id="C", action="replenish",
                                   status="done"))
        app.refresh_snapshot()
        await _ready(app, pilot)
        rec = seeded.by_key("action_failing:replenish:C-EXTR1")
        assert rec is not None and rec.state != "active"
