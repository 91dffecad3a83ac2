"""The closed loop in one object: detection → recommendation → decision → outbox → outcome.

The runtime (and tests) build one ``Engine`` per process over a store. Nothing here
keeps state that matters across a restart: recommendations, decisions, the outbox and
outcomes live in the store, so a new Engine over the same file carries on where a
killed one stopped (``executor.recover()`` first).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Literal

from sqlalchemy import insert, select

from core import audit
from core.auth import Authenticator, AuthError, SigningSession
from core.clock import Clock
from core.config.schema import Config
from core.detect.events import Detection
from core.engine.decide import Approval, Decider, DecisionError
from core.engine.detection import DetectionLike
from core.engine.executors import DeviceWriter, PlantCommands, Retrainer, default_adapters
from core.engine.executors.quality import DISPOSITIONS
from core.engine.learn import Learner, Measured, track_record
from core.engine.outbox import Executed, Executor
from core.engine.recommend import Recommender, Submitted, request
from core.engine.rules import (
    Replanner,
    decision_class_for,
    scheduler_replanner,
    suspected_batch,
)
from core.events import EventBus
from core.store.db import Store, guard
from core.store.models import Action, Hold, WorkOrder

ACT = Action.__table__  # type: ignore[attr-defined]
Lane = Literal["plan", "decide"]


def lane_of(det: DetectionLike) -> Lane:
    """``plan`` for a detection a re-plan answers, else ``decide`` (see Engine.lane_of)."""
    if not det.cleared and decision_class_for(det) == "replan":
        return "plan"
    return "decide"


class Engine:
    def __init__(self, store: Store, config: Config, clock: Clock, *, plant: PlantCommands,
                 device: DeviceWriter | None = None, replanner: Replanner | None = None,
                 use_scheduler: bool = True, bus: EventBus | None = None,
                 publish_detections: bool = False, retrain: Retrainer | None = None) -> None:
        """``publish_detections``: also put each detection on the bus (leave False when
        core.detect's DetectLoop publishes them to the same bus already); ``retrain``
        starts a model job's retraining (the runtime's ML jobs; None: no ML here)."""
        self.store, self.config, self.clock = store, config, clock
        self.bus = bus or EventBus()
        self.auth = Authenticator(store.engine, config.users, config.auth, clock)
        if replanner is None and use_scheduler:
            replanner = scheduler_replanner(store)
        self.recommender = Recommender(store, clock, config.auth, self.bus, replanner,
                                       publish_detections)
        self.decider = Decider(store, self.auth, config.autonomy, clock, self.bus)
        self.executor = Executor(store, default_adapters(store, clock, plant, device,
                                                        retrain=retrain), clock,
                                 self.bus)
        self.learner = Learner(store, clock, self.bus)

    def on_detection(self, det: DetectionLike, approve: str = "policy") -> Submitted:
        """Recommend, then decide by policy: ``policy`` approves what the class's autonomy
        marks ``auto``; ``auto`` approves every recommendation (a headless run that
        stands in for its people); ``never`` leaves everything to people."""
        res = self._submit(self._machine_problem(det), approve)
        batch = self._batch_problem(det)
        if batch is not None:  # the batch's lots want a hold besides the machine's fix
            self._submit(batch, approve)
        return res

    @staticmethod
    def lane_of(det: DetectionLike) -> Lane:
        """Where a host should decide this detection: ``plan`` for a re-plan (the solver
        takes about a second, so it gets a thread of its own and the limit crossings and
        SPC runs behind it wait for nothing), ``decide`` for everything else."""
        return lane_of(det)

    def on_model_drift(self, model: str, drifted: list[dict], approve: str = "policy",
                       job_kind: str = "") -> Submitted:
        """A model's inputs drifted (PSI per feature): one open retrain recommendation
        per model; a later check's evidence merges into it."""
        return self._submit(drift_detection(model, drifted, self.clock.now(), job_kind),
                            approve)

    def _submit(self, det: DetectionLike, approve: str) -> Submitted:
        res = self.recommender.submit(det)
        if res.recommendation_id and res.outcome in ("created", "merged", "superseded") \
                and approve != "never":
            res.action_id = self.decider.auto_approve(res.recommendation_id,
                                                      force=approve == "auto")
        return res

    @staticmethod
    def _machine_problem(det: DetectionLike) -> DetectionLike:
        """A run (rule 2) and a trend (rule 3) on one chart are one problem of the machine:
        one open correction for its characteristic, not two that contradict each other."""
        char = det.evidence.get("characteristic")
        if det.kind != "spc" or det.cleared or decision_class_for(det) != "setpoint" or \
                not det.equipment_id or not char or not dataclasses.is_dataclass(det):
            return det
        return dataclasses.replace(  # type: ignore[type-var]
            det, problem_key=f"r2r:{det.equipment_id}:{char}", id="")

    def _batch_problem(self, det: DetectionLike) -> DetectionLike | None:
        """An SPC shift that follows a material batch becomes a problem of its own: hold
        that batch's lots (and what was made from them), one recommendation per batch."""
        if det.kind != "spc" or det.cleared or decision_class_for(det) != "setpoint":
            return None
        try:
            suspect = suspected_batch(self.store, det)
        except Exception:  # evidence is optional: never let it stop the main path
            return None
        if suspect is None or not dataclasses.is_dataclass(det):
            return None
        ev = {**det.evidence, "action": "lot_hold", "suspected_batch": suspect}
        return dataclasses.replace(  # type: ignore[type-var]
            det, problem_key=f"batch:{suspect['batch_id']}:{det.evidence.get('characteristic')}",
            evidence=ev, id="",
            summary=f"batch {suspect['batch_id']} suspected: {suspect['units']} units made "
                    f"from it on {det.equipment_id} run {suspect['offset']:+.3g} off target, "
                    f"other batches {suspect['other_offset']:+.3g}")

    def approve(self, rec_id: str, *, session: SigningSession | None = None,
                user_id: str | None = None, pin: str | None = None,
                comment: str = "", seen_hash: str | None = None) -> Approval:
        return self.decider.approve(rec_id, session=session, user_id=user_id, pin=pin,
                                    comment=comment, seen_hash=seen_hash)

    def reject(self, rec_id: str, user_id: str, pin: str, reason_code: str,
               text: str = "") -> None:
        self.decider.reject(rec_id, user_id, pin, reason_code, text)

    def run_outbox(self) -> list[Executed]:
        return self.executor.run_once()

    def evaluate(self) -> list[Measured]:
        return self.learner.evaluate()

    def track_record(self, since: datetime) -> dict:
        return track_record(self.store, since)

    # ------------------------------------------------------------ person-initiated

    def request_release(self, hold_id: str, disposition: str, user_id: str,
                        note: str = "") -> str:
        """Ask to release a hold with a disposition; it is approved like any recommendation."""
        return request_release(self.store, self.clock, hold_id, disposition, user_id,
                               self.recommender.required_role("lot_release"), note)

    def complete_work_order(self, wo_id: str, user_id: str, pin: str) -> int:
        """Maintenance signs a WO off; the completion reaches the plant through the outbox."""
        return complete_work_order(self.store, self.auth, self.clock, wo_id, user_id, pin)

    def complete_work_order_by_policy(self, wo_id: str, actor: str) -> int:
        """A stand-in crew signs a WO off (the evaluation's maintenance team); audited
        under ``actor`` with no personal signature, like any policy decision."""
        return queue_completion(self.store, self.clock, _work_order(self.store, wo_id),
                                actor, None)


# ---------------------------------------------------------------- over the store alone
# Person-initiated acts need no Executor: they write the store (a recommendation, or an
# outbox row) and whichever runtime follows that store executes them. The console uses
# these directly; ``Engine`` delegates to them.


def drift_detection(model: str, drifted: list[dict], now: datetime,
                    job_kind: str = "") -> Detection:
    """A drift check's finding as a detection (``drifted``: ``{"feature", "psi"}`` rows)."""
    rows = sorted(({"feature": str(d["feature"]), "psi": round(float(d.get("psi") or 0), 4)}
                   for d in drifted if d.get("feature")), key=lambda d: -d["psi"])
    worst = rows[0]["psi"] if rows else 0.0
    names = ", ".join(d["feature"] for d in rows[:3]) + (" …" if len(rows) > 3 else "")
    return Detection(
        kind="model_drift", detector_id=f"drift.{model}", problem_key=f"drift:{model}",
        priority="low", onset=now, value=worst,
        summary=f"model {model}: {len(rows)} input feature(s) drifted from its training "
                f"data ({names})",
        evidence={"model": model, "model_kind": job_kind, "drifted": rows, "psi": worst})


def request_release(store: Store, clock: Clock, hold_id: str, disposition: str,
                    user_id: str, required_role: str, note: str = "") -> str:
    """A lot_release recommendation for an open hold; returns its id."""
    if disposition not in DISPOSITIONS:
        raise DecisionError(f"disposition must be one of {', '.join(DISPOSITIONS)}")
    with guard(store), store.session() as s:
        hold = s.get(Hold, hold_id)
    if hold is None or hold.status != "open":
        raise DecisionError(f"no open hold {hold_id!r}")
    return request(store, clock, "lot_release", hold_id, "release_lots",
                   {"hold_id": hold_id, "disposition": disposition, "reason": note},
                   f"release {hold_id} as {disposition}" + (f": {note}" if note else ""),
                   user_id, required_role)


def complete_work_order(store: Store, auth: Authenticator, clock: Clock, wo_id: str,
                        user_id: str, pin: str) -> int:
    """Sign a WO off with user id + PIN (a refusal is audited); returns the outbox action."""
    wo = _work_order(store, wo_id)
    try:
        auth.require(user_id, "work_order")
        sig = auth.sign(user_id, pin, f"work order {wo_id} done",
                        audit.record_hash({"work_order": wo_id, "status": wo.status}))
    except AuthError as e:
        audit.append(store.engine, user_id, "decision.refused", "work_order", wo_id,
                     {"attempt": "complete", "reason": str(e)}, ts=clock.now())
        raise
    return queue_completion(store, clock, wo, user_id, sig.as_dict())


def queue_completion(store: Store, clock: Clock, wo: WorkOrder, actor: str,
                     signature: dict | None) -> int:
    """The outbox row that completes ``wo`` (once: idempotent per work order)."""
    key = f"{wo.id}:complete"
    now = clock.now()
    with guard(store), store.begin() as conn:
        row = conn.execute(select(ACT.c.id).where(ACT.c.idempotency_key == key)).first()
        if row is not None:
            return int(row.id)
        aid = conn.execute(insert(ACT).values(
            recommendation_id=wo.recommendation_id, kind="complete_work_order",
            params=json.dumps({"work_order_id": wo.id}), idempotency_key=key,
            status="pending", attempts=0, result="", created_at=now)).inserted_primary_key[0]
        audit.append(conn, actor, "work_order.completion_signed", "work_order", wo.id,
                     {"action_id": aid, "signature": signature}, ts=now)
    return int(aid)


def _work_order(store: Store, wo_id: str) -> WorkOrder:
    with guard(store), store.session() as s:
        wo = s.get(WorkOrder, wo_id)
    if wo is None:
        raise DecisionError(f"no work order {wo_id!r}")
    return wo


__all__ = ["AuthError", "DecisionError", "Engine", "complete_work_order", "queue_completion",
           "request_release"]
