"""The outbox executor: claim a pending action atomically, run its adapter, record the result.

Exactly once = at most one claim per attempt (``UPDATE … WHERE status='pending'``) plus
idempotent adapters. A process that dies mid-action leaves the row 'running';
``recover()`` at start-up puts such rows back to 'pending' (audited) and the adapter,
seeing its own earlier effect, completes without repeating it. Run one executor per
store — or, when several runtimes share one store (a line PC each), give each executor
an ``accepts`` test (the runtime's line scope and lease): it then sees, resumes and claims
only its own lines' actions, so ``recover()`` touches only rows its lines' previous
owner left behind.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from core import audit
from core.clock import Clock
from core.engine.executors.base import ActionFailed, ActionView, Adapter, TransientError
from core.events import EventBus, ExecutionEvent
from core.statuses import REC_IN_FLIGHT
from core.store.db import Store, guard
from core.store.models import Action, Recommendation

log = logging.getLogger(__name__)
ACT = Action.__table__  # type: ignore[attr-defined]
REC = Recommendation.__table__  # type: ignore[attr-defined]
ACTOR = "system:outbox"


@dataclass(frozen=True)
class Executed:
    action_id: int
    kind: str
    status: str  # done | failed | pending (retry later) | skipped (claimed elsewhere)
    result: dict[str, Any]


class Executor:
    def __init__(self, store: Store, adapters: dict[str, Adapter], clock: Clock,
                 bus: EventBus | None = None, max_attempts: int = 3) -> None:
        self.store = store
        self.adapters = adapters
        self.clock = clock
        self.bus = bus or EventBus()
        self.max_attempts = max_attempts
        #: (connection, action row) -> ours to run; None: every action is
        self.accepts: Callable[[Connection, Any], bool] | None = None

    def _ours(self, conn: Connection, rows: Any) -> list[Any]:
        return list(rows) if self.accepts is None else [r for r in rows
                                                        if self.accepts(conn, r)]

    def recover(self) -> list[int]:
        """Actions left 'running' by a dead process go back to 'pending' (audited)."""
        now = self.clock.now()
        back: list[int] = []
        with guard(self.store), self.store.begin() as conn:
            rows = conn.execute(select(ACT.c.id, ACT.c.attempts, ACT.c.params,
                                       ACT.c.recommendation_id).where(
                ACT.c.status == "running")).all()
            for r in self._ours(conn, rows):
                res = conn.execute(update(ACT).where(ACT.c.id == r.id,
                                                     ACT.c.status == "running")
                                   .values(status="pending"))
                if res.rowcount:
                    audit.append(conn, ACTOR, "action.resumed", "action", str(r.id),
                                 {"attempts": r.attempts,
                                  "why": "left running by a process that stopped"}, ts=now)
                    back.append(int(r.id))
        for aid in back:
            self.bus.publish(ExecutionEvent(now, f"action {aid} resumed after a restart",
                                            action_id=aid, status="resumed"))
        return back

    def pending(self) -> list[int]:
        with guard(self.store), self.store.begin() as conn:
            return [int(r.id) for r in self._ours(conn, conn.execute(
                select(ACT.c.id, ACT.c.params, ACT.c.recommendation_id)
                .where(ACT.c.status == "pending").order_by(ACT.c.id)).all())]

    def run_once(self, limit: int | None = None) -> list[Executed]:
        """Run every pending action once (oldest first); returns what happened."""
        out: list[Executed] = []
        for aid in self.pending()[:limit]:
            out.append(self.run_action(aid))
        return out

    def run_forever(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        """The runtime's loop (a thread): recover once, then drain the outbox until stopped."""
        self.recover()
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:  # the loop must survive a broken store moment
                log.exception("outbox pass failed")
            stop.wait(poll_s)

    # ------------------------------------------------------------ one action

    def claim(self, aid: int) -> ActionView | None:
        now = self.clock.now()
        with guard(self.store), self.store.begin() as conn:
            if self.accepts is not None:  # still ours (the lease may have lapsed meanwhile)
                r = conn.execute(select(ACT.c.id, ACT.c.params, ACT.c.recommendation_id)
                                 .where(ACT.c.id == aid)).first()
                if r is None or not self.accepts(conn, r):
                    return None
            res = conn.execute(update(ACT).where(ACT.c.id == aid, ACT.c.status == "pending")
                               .values(status="running", attempts=ACT.c.attempts + 1,
                                       started_at=now))
            if res.rowcount != 1:
                return None
            row = conn.execute(select(ACT).where(ACT.c.id == aid)).one()
            if row.recommendation_id and _primary(row):
                conn.execute(update(REC).where(REC.c.id == row.recommendation_id,
                                               REC.c.status.in_(REC_IN_FLIGHT))
                             .values(status="executing", updated_at=now))
            audit.append(conn, ACTOR, "action.claimed", "action", str(aid),
                         {"kind": row.kind, "attempt": row.attempts,
                          "idempotency_key": row.idempotency_key}, ts=now)
        return ActionView(int(row.id), row.kind, json.loads(row.params or "{}"),
                          row.idempotency_key, int(row.attempts), row.recommendation_id)

    def run_action(self, aid: int) -> Executed:
        view = self.claim(aid)
        if view is None:
            return Executed(aid, "", "skipped", {})
        self.bus.publish(ExecutionEvent(self.clock.now(), f"{view.kind} #{aid} running",
                                        recommendation_id=view.recommendation_id,
                                        action_id=aid, action=view.kind, status="running"))
        adapter = self.adapters.get(view.kind)
        try:
            if adapter is None:
                raise ActionFailed(f"no adapter for action kind {view.kind!r} is configured")
            result = adapter.execute(view)
        except ActionFailed as e:
            return self._finish(view, "failed", {"error": str(e)})
        except TransientError as e:
            if view.attempts < self.max_attempts:
                return self._finish(view, "pending", {"error": str(e), "retry": True})
            return self._finish(view, "failed", {"error": f"{e} (gave up after "
                                                          f"{view.attempts} attempts)"})
        except Exception as e:  # a bug or an unexpected device answer: visible, not silent
            log.exception("action %s failed", aid)
            return self._finish(view, "failed", {"error": f"{type(e).__name__}: {e}"})
        return self._finish(view, "done", result)

    def _finish(self, view: ActionView, status: str, result: dict[str, Any]) -> Executed:
        now = self.clock.now()
        with guard(self.store), self.store.begin() as conn:
            conn.execute(update(ACT).where(ACT.c.id == view.id, ACT.c.status == "running")
                         .values(status=status, result=json.dumps(result, default=str),
                                 finished_at=None if status == "pending" else now))
            if view.recommendation_id and status != "pending" and view.idempotency_key == \
                    f"{view.recommendation_id}:{view.kind}":
                conn.execute(update(REC).where(REC.c.id == view.recommendation_id).values(
                    status="executed" if status == "done" else "failed", updated_at=now))
            audit.append(conn, ACTOR, f"action.{'retry' if status == 'pending' else status}",
                         "action", str(view.id),
                         {"kind": view.kind, "attempt": view.attempts, "result": result},
                         ts=now)
        self.bus.publish(ExecutionEvent(
            now, f"{view.kind} #{view.id} {status}"
            + (f": {result.get('error')}" if "error" in result else ""),
            recommendation_id=view.recommendation_id, detail=result, action_id=view.id,
            action=view.kind, status=status))
        return Executed(view.id, view.kind, status, result)


def _primary(row: Any) -> bool:
    return bool(row.idempotency_key == f"{row.recommendation_id}:{row.kind}")
