"""Model adapter: an approved retraining is handed to the runtime's ML jobs.

Training takes minutes and runs in the ML jobs' process pool, so the adapter does not
wait for it: it *starts* the job (the outbox thread stays free for holds and work
orders) and the ML jobs report the result as a model event. A marker row
(``Meta['outbox:<key>']``) committed after the start makes a repeat report done. A
crash between the start and the marker retrains once more on the next attempt, which
changes nothing: a challenger replaces the champion only when it beats it.

core/ must not import ml/, so the runtime passes the starter in: ``retrain(model, key)``
returns what was started (a dict), or raises ``ActionFailed`` (no such model job).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert, select

from core import audit
from core.clock import Clock
from core.engine.executors.base import ActionFailed, ActionView
from core.store.db import Store, guard
from core.store.models import Meta

META = Meta.__table__  # type: ignore[attr-defined]

Retrainer = Callable[[str, str], dict[str, Any]]
"""(model job name, idempotency key) -> what was started; raises ActionFailed."""


class ModelAdapter:
    kinds = ("retrain_model",)

    def __init__(self, store: Store, clock: Clock, retrain: Retrainer | None = None) -> None:
        self.store, self.clock, self.retrain = store, clock, retrain

    def execute(self, a: ActionView) -> dict[str, Any]:
        model = str(a.params.get("model") or "")
        if not model:
            raise ActionFailed("no model named in the action")
        marker = f"outbox:{a.idempotency_key}"
        with guard(self.store), self.store.begin() as conn:
            seen = conn.execute(select(META.c.value).where(META.c.key == marker)).first()
        if seen is not None:
            return {**json.loads(seen.value), "already_done": True}
        if self.retrain is None:
            raise ActionFailed(f"this runtime runs no ML jobs: train {model} with "
                               f"`loopline train {model}` where the models live")
        started = dict(self.retrain(model, a.idempotency_key))
        result = {"model": model, **started}
        with guard(self.store), self.store.begin() as conn:
            conn.execute(insert(META).values(key=marker, value=json.dumps(result, default=str)))
            audit.append(conn, "system:outbox", "model.retrain_started", "model", model,
                         {**result, "action_id": a.id}, ts=self.clock.now())
        return {**result, "already_done": False}
