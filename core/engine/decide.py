"""Decide: autonomy per decision class, e-signed approvals and rejections, undo, promotion.

Approving writes the Decision, the recommendation's new status, the outbox Action and
the audit entry in ONE transaction, guarded by ``WHERE status = 'proposed'``: two people
pressing approve at once produce one approval and one clear refusal, never two actions.
Every refusal (expired, already decided, wrong role, wrong PIN, advise-only) raises an
error whose text a person can act on and leaves an audit entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from core import audit
from core.auth import Authenticator, AuthError, Signature, SigningSession
from core.clock import Clock, ensure_utc, parse_utc
from core.config.schema import DECISION_CLASSES, Autonomy
from core.engine.recommend import REC, record_hash_of
from core.events import DecisionEvent, EventBus
from core.statuses import REC_OPEN
from core.store.db import Store, guard
from core.store.models import Action, Decision, Meta, Recommendation

DEC = Decision.__table__  # type: ignore[attr-defined]
ACT = Action.__table__  # type: ignore[attr-defined]
META = Meta.__table__  # type: ignore[attr-defined]

REJECT_REASONS = ("false_alarm", "not_now", "wrong_action", "already_done", "other")
LEVELS = ("advise", "approve", "auto")
POLICY = "system:autonomy"
META_PREFIX = "autonomy."
FIRST_OF_TWO = "first_signature"

# action kind -> the compensating action kind (auto decisions may be undone in a window)
UNDO_OF = {"hold_lots": "release_lots", "create_work_order": "cancel_work_order",
           "write_setpoint": "write_setpoint", "replenish": "replenish"}


class DecisionError(Exception):
    """A decision was refused for a reason other than identity: str() says why."""


class RecordChanged(DecisionError):
    """The record changed between being shown and being signed (new evidence merged)."""


@dataclass(frozen=True)
class Approval:
    recommendation_id: str
    action_id: int | None  # None while a two-person approval waits for its second signer
    signature: Signature | None
    by: str
    waiting_for_second: bool = False


def _requested_by(row: Any) -> str | None:
    """The person who asked for a recommendation (``core.requests``), if one did."""
    try:
        ev = json.loads(row.evidence or "{}")
    except (TypeError, ValueError):
        return None
    who = ev.get("requested_by") if isinstance(ev, dict) else None
    return str(who) if who else None


def idempotency_key(rec_id: str, action: str) -> str:
    return f"{rec_id}:{action}"


class Decider:
    def __init__(self, store: Store, auth: Authenticator, autonomy: Autonomy, clock: Clock,
                 bus: EventBus | None = None) -> None:
        self.store = store
        self.auth = auth
        self.autonomy = autonomy
        self.clock = clock
        self.bus = bus or EventBus()

    # ------------------------------------------------------------ autonomy

    def autonomy_for(self, decision_class: str) -> str:
        """The configured level, unless an admin changed it (persisted in Meta)."""
        override = self.store.get_meta(META_PREFIX + decision_class)
        if override in LEVELS:
            return override
        return str(getattr(self.autonomy, decision_class, "approve"))

    def set_autonomy(self, decision_class: str, level: str, admin_id: str, pin: str) -> Signature:
        """Change a class's autonomy; only an admin may, with an e-signature (audited)."""
        if decision_class not in DECISION_CLASSES:
            raise DecisionError(f"unknown decision class {decision_class!r}; one of "
                                f"{', '.join(DECISION_CLASSES)}")
        if level not in LEVELS:
            raise DecisionError(f"unknown autonomy level {level!r}; one of {', '.join(LEVELS)}")
        before = self.autonomy_for(decision_class)
        who = self.auth.identity(admin_id)
        if "admin" not in who.roles:
            self._audit_refusal(admin_id, "autonomy", decision_class,
                                f"{who.name} is not an admin")
            raise AuthError(f"{who.name} ({', '.join(who.roles)}) may not change autonomy; "
                            "an admin must sign")
        now = self.clock.now()
        record = {"decision_class": decision_class, "from": before, "to": level,
                  "at": now.isoformat()}
        try:
            sig = self.auth.sign(admin_id, pin, f"set autonomy of {decision_class} from "
                                 f"{before} to {level}", audit.record_hash(record))
        except AuthError as e:
            self._audit_refusal(admin_id, "autonomy", decision_class, str(e))
            raise
        with guard(self.store), self.store.begin() as conn:
            key = META_PREFIX + decision_class
            if conn.execute(select(META.c.key).where(META.c.key == key)).first():
                conn.execute(update(META).where(META.c.key == key).values(value=level))
            else:
                conn.execute(insert(META).values(key=key, value=level))
            audit.append(conn, admin_id, "autonomy.changed", "decision_class", decision_class,
                         {**record, "signature": sig.as_dict()}, ts=now)
        self.bus.publish(DecisionEvent(now, f"{decision_class}: {before} → {level}",
                                       detail=record, verdict="autonomy", user_id=admin_id))
        return sig

    # ------------------------------------------------------------ approve

    def approve(self, rec_id: str, *, session: SigningSession | None = None,
                user_id: str | None = None, pin: str | None = None, comment: str = "",
                seen_hash: str | None = None) -> Approval:
        """A person approves: role, e-signature bound to the record hash, then the outbox."""
        user = (session.user_id if session is not None else None) or user_id
        if not user:
            self._audit_refusal("?", "approve", rec_id, "no user signed in")
            raise AuthError("sign in first (user id and PIN)")
        row = self._open_row(rec_id, user, "approve")
        level = self.autonomy_for(row.decision_class)
        if level == "advise":
            self._refuse(user, "approve", row, f"{row.decision_class} is advise-only here: "
                         "the recommendation is shown but not executed (an admin can change "
                         "the autonomy)")
        try:
            self.auth.require(user, row.decision_class)
        except AuthError as e:
            self._refuse(user, "approve", row, str(e), AuthError)
        author = _requested_by(row)
        if author is not None and author == user and \
                row.decision_class in (getattr(self.autonomy, "four_eyes", None) or ()):
            self._refuse(user, "approve", row, f"{row.id} was requested by "
                         f"{self.auth.identity(user).name}: the four-eyes rule for "
                         f"{row.decision_class} needs another person to approve it", AuthError)
        h = record_hash_of(row)
        if seen_hash is not None and seen_hash != h:
            self._refuse(user, "approve", row, f"{row.id} changed since you opened it (new "
                         "evidence merged); review it again before signing", RecordChanged)
        two_person = (row.decision_class == "setpoint" and self.auth.settings.two_person_setpoint)
        first = self._first_signer(row.id) if two_person else None
        if first is not None and first == user:
            self._refuse(user, "approve", row, f"{row.id} needs a second, different person: "
                         f"{self.auth.identity(user).name} already signed first", AuthError)
        meaning = (f"approve {row.decision_class} {row.target}: I authorise "
                   f"{row.action.replace('_', ' ')}")
        try:
            if session is not None:
                sig = session.sign(meaning, h, pin)
            else:
                if pin is None:
                    raise AuthError("enter your PIN to sign")
                sig = self.auth.sign(user, pin, meaning, h)
        except AuthError as e:
            self._refuse(user, "approve", row, str(e), AuthError)
        if two_person and first is None:
            return self._first_signature(row, sig, comment)
        action_id = self._commit_approval(row, sig, user, comment, h)
        return Approval(row.id, action_id, sig, user)

    def _first_signature(self, row: Any, sig: Signature, comment: str) -> Approval:
        now = self.clock.now()
        with guard(self.store), self.store.begin() as conn:
            conn.execute(insert(DEC).values(
                recommendation_id=row.id, user_id=sig.user_id, verdict=FIRST_OF_TWO,
                comment=comment, signed_name=sig.printed_name, signed_at=sig.signed_at,
                meaning=sig.meaning, record_hash=sig.record_hash))
            audit.append(conn, sig.user_id, "decision.first_signature", "recommendation",
                         row.id, {"signature": sig.as_dict(), "needs": "a second signer"},
                         ts=now)
        self.bus.publish(DecisionEvent(now, f"{row.id}: first of two signatures",
                                       recommendation_id=row.id, verdict=FIRST_OF_TWO,
                                       user_id=sig.user_id))
        return Approval(row.id, None, sig, sig.user_id, waiting_for_second=True)

    def _commit_approval(self, row: Any, sig: Signature | None, user: str, comment: str,
                         h: str, extra_params: dict[str, Any] | None = None) -> int:
        now = self.clock.now()
        params = {**json.loads(row.params or "{}"), **(extra_params or {}), "approved_by": user}
        key = idempotency_key(row.id, row.action)
        try:
            with guard(self.store), self.store.begin() as conn:
                res = conn.execute(update(REC).where(
                    REC.c.id == row.id, REC.c.status == "proposed").values(
                    status="approved", updated_at=now))
                if res.rowcount != 1:
                    raise _Lost()
                conn.execute(insert(DEC).values(
                    recommendation_id=row.id, user_id=user, verdict="approved",
                    comment=comment, signed_name=sig.printed_name if sig else POLICY,
                    signed_at=sig.signed_at if sig else now,
                    meaning=sig.meaning if sig else "approved by policy (autonomy = auto)",
                    record_hash=h))
                aid = conn.execute(insert(ACT).values(
                    recommendation_id=row.id, kind=row.action,
                    params=json.dumps(params, sort_keys=True, default=str),
                    idempotency_key=key, status="pending", attempts=0, result="",
                    created_at=now)).inserted_primary_key[0]
                audit.append(conn, user, "decision.approved", "recommendation", row.id,
                             {"action_id": aid, "idempotency_key": key, "comment": comment,
                              "signature": sig.as_dict() if sig else None,
                              "record_hash": h}, ts=now)
        except (_Lost, IntegrityError):
            fresh = self._row(row.id)
            self._refuse(user, "approve", fresh, self._already(fresh))
        self.bus.publish(DecisionEvent(now, f"{row.id} approved by {user}",
                                       recommendation_id=row.id,
                                       detail={"action_id": aid, "action": row.action},
                                       verdict="approved", user_id=user))
        return int(aid)

    def auto_approve(self, rec_id: str, *, force: bool = False) -> int | None:
        """Approve by policy when the class is ``auto``; returns the action id or None.

        ``force``: approve whatever the class's level (a headless run started with
        ``--approve auto``, e.g. the evaluation's loop-on arm); still audited as policy."""
        row = self._row(rec_id)
        if row is None or row.status != "proposed":
            return None
        if not force and self.autonomy_for(row.decision_class) != "auto":
            return None
        now = self.clock.now()
        if row.expires_at is not None and ensure_utc(row.expires_at) <= now:
            return None
        undo_until = now + timedelta(seconds=self.autonomy.undo_window_s)
        extra = {"undo_until": undo_until.isoformat()} if row.action in UNDO_OF else {}
        return self._commit_approval(row, None, POLICY, "", record_hash_of(row), extra)

    # ------------------------------------------------------------ reject

    def reject(self, rec_id: str, user_id: str, pin: str | None, reason_code: str,
               text: str = "", *, session: SigningSession | None = None) -> Signature:
        """A signed 'no' with a reason from the fixed list; it is feedback for learning."""
        user = (session.user_id if session is not None else None) or user_id
        if reason_code not in REJECT_REASONS:
            self._audit_refusal(user, "reject", rec_id, f"unknown reason {reason_code!r}")
            raise DecisionError(f"reason must be one of {', '.join(REJECT_REASONS)} "
                                f"(got {reason_code!r})")
        if reason_code == "other" and not text.strip():
            self._audit_refusal(user, "reject", rec_id, "reason 'other' without text")
            raise DecisionError("reason 'other' needs a few words saying why")
        row = self._open_row(rec_id, user, "reject", allow=REC_OPEN)
        try:
            self.auth.require(user, row.decision_class)
        except AuthError as e:
            self._refuse(user, "reject", row, str(e), AuthError)
        h = record_hash_of(row)
        meaning = f"reject {row.decision_class} {row.target}: {reason_code}"
        try:
            if session is not None:
                sig = session.sign(meaning, h, pin)
            else:
                if pin is None:
                    raise AuthError("enter your PIN to sign")
                sig = self.auth.sign(user, pin, meaning, h)
        except AuthError as e:
            self._refuse(user, "reject", row, str(e), AuthError)
        now = self.clock.now()
        with guard(self.store), self.store.begin() as conn:
            res = conn.execute(update(REC).where(
                REC.c.id == row.id, REC.c.status.in_(REC_OPEN)).values(
                status="rejected", updated_at=now))
            if res.rowcount == 1:
                conn.execute(insert(DEC).values(
                    recommendation_id=row.id, user_id=user, verdict="rejected",
                    reason=reason_code, comment=text, signed_name=sig.printed_name,
                    signed_at=sig.signed_at, meaning=sig.meaning, record_hash=h))
                audit.append(conn, user, "decision.rejected", "recommendation", row.id,
                             {"reason": reason_code, "text": text,
                              "signature": sig.as_dict()}, ts=now)
        if res.rowcount != 1:
            fresh = self._row(row.id)
            self._refuse(user, "reject", fresh, self._already(fresh))
        self.bus.publish(DecisionEvent(now, f"{row.id} rejected by {user}: {reason_code}",
                                       recommendation_id=row.id,
                                       detail={"reason": reason_code, "text": text},
                                       verdict="rejected", user_id=user))
        return sig

    # ------------------------------------------------------------ undo

    def undo(self, action_id: int, user_id: str, pin: str, reason: str = "") -> int | None:
        """Undo a policy-approved action inside its window.

        Not yet run: the action is cancelled. Already done: a compensating action is queued
        (release the hold, cancel the WO, write the previous setpoint, move stock back).
        Returns the compensating action's id (None when it was cancelled before running).
        """
        now = self.clock.now()
        with guard(self.store), self.store.begin() as conn:
            act = conn.execute(select(ACT).where(ACT.c.id == action_id)).first()
        if act is None:
            raise DecisionError(f"no action {action_id}")
        params = json.loads(act.params or "{}")
        rec = self._row(act.recommendation_id) if act.recommendation_id else None
        cls = rec.decision_class if rec is not None else ""
        if act.kind not in UNDO_OF or "undo_until" not in params:
            self._audit_refusal(user_id, "undo", str(action_id), "not undoable")
            raise DecisionError(f"action {action_id} ({act.kind}) cannot be undone here: only "
                                "actions approved by policy, of a kind that has an undo")
        if now > parse_utc(params["undo_until"]):
            self._audit_refusal(user_id, "undo", str(action_id), "undo window over")
            raise DecisionError(f"the undo window of action {action_id} closed at "
                                f"{params['undo_until']}")
        try:
            self.auth.require(user_id, cls)
            sig = self.auth.sign(user_id, pin, f"undo {act.kind} #{action_id}: {reason}",
                                 audit.record_hash({"action_id": action_id,
                                                    "key": act.idempotency_key}))
        except AuthError as e:
            self._audit_refusal(user_id, "undo", str(action_id), str(e))
            raise
        with guard(self.store), self.store.begin() as conn:
            res = conn.execute(update(ACT).where(ACT.c.id == action_id,
                                                 ACT.c.status == "pending").values(
                status="cancelled", finished_at=now, result=json.dumps({"undone_by": user_id})))
            if res.rowcount == 1:
                audit.append(conn, user_id, "action.cancelled", "action", str(action_id),
                             {"reason": reason, "signature": sig.as_dict()}, ts=now)
                if rec is not None:
                    conn.execute(update(REC).where(REC.c.id == rec.id).values(
                        status="undone", updated_at=now))
                return None
            act = conn.execute(select(ACT).where(ACT.c.id == action_id)).first()
            if act.status != "done":
                raise DecisionError(f"action {action_id} is {act.status}; undo it when it "
                                    "has finished")
            comp = compensation(act.kind, params, json.loads(act.result or "{}"))
            comp["undo_of"] = action_id
            kind = UNDO_OF[act.kind]
            aid = conn.execute(insert(ACT).values(
                recommendation_id=act.recommendation_id, kind=kind,
                params=json.dumps(comp, sort_keys=True, default=str),
                idempotency_key=f"{act.idempotency_key}:undo", status="pending",
                attempts=0, result="", created_at=now)).inserted_primary_key[0]
            if rec is not None:
                conn.execute(update(REC).where(REC.c.id == rec.id).values(
                    status="undone", updated_at=now))
            audit.append(conn, user_id, "action.undo_queued", "action", str(action_id),
                         {"compensating_action": aid, "kind": kind, "reason": reason,
                          "signature": sig.as_dict()}, ts=now)
        return int(aid)

    # ------------------------------------------------------------ helpers

    def _row(self, rec_id: str) -> Any:
        with guard(self.store), self.store.session() as s:
            return s.get(Recommendation, rec_id)

    def _first_signer(self, rec_id: str) -> str | None:
        with guard(self.store), self.store.begin() as conn:
            r = conn.execute(select(DEC.c.user_id).where(
                DEC.c.recommendation_id == rec_id, DEC.c.verdict == FIRST_OF_TWO)
                .order_by(DEC.c.id)).first()
        return r.user_id if r else None

    def _open_row(self, rec_id: str, user: str, what: str,
                  allow: tuple[str, ...] = ("proposed",)) -> Any:
        """The recommendation if it can still be decided; expiry is applied here."""
        row = self._row(rec_id)
        if row is None:
            self._audit_refusal(user, what, rec_id, "unknown recommendation")
            raise DecisionError(f"no recommendation {rec_id!r}")
        now = self.clock.now()
        if row.status in REC_OPEN and row.expires_at is not None \
                and ensure_utc(row.expires_at) <= now:
            with guard(self.store), self.store.begin() as conn:
                res = conn.execute(update(REC).where(
                    REC.c.id == row.id, REC.c.status.in_(REC_OPEN)).values(
                    status="expired", updated_at=now))
                if res.rowcount:
                    audit.append(conn, "system:engine", "rec.expired", "recommendation",
                                 row.id, {"expires_at": ensure_utc(row.expires_at).isoformat()},
                                 ts=now)
            self._refuse(user, what, row, f"{row.id} expired at "
                         f"{ensure_utc(row.expires_at):%Y-%m-%d %H:%M:%S} UTC; it is stale — "
                         "wait for fresh evidence")
        if row.status not in allow:
            self._refuse(user, what, row, self._already(row))
        return row

    def _already(self, row: Any) -> str:
        if row is None:
            return "the recommendation is gone"
        with guard(self.store), self.store.begin() as conn:
            d = conn.execute(select(DEC).where(
                DEC.c.recommendation_id == row.id,
                DEC.c.verdict.in_(("approved", "rejected"))).order_by(DEC.c.id)).first()
        if d is not None:
            at = ensure_utc(d.signed_at)
            return (f"{row.id} was already {d.verdict} by {d.signed_name or d.user_id} at "
                    f"{at:%Y-%m-%d %H:%M:%S} UTC (now {row.status})")
        if row.status == "withheld":
            return f"{row.id} is withheld: its inputs are Bad or Uncertain; fix the data first"
        if row.status == "superseded":
            return f"{row.id} was superseded by {row.superseded_by}; decide that one instead"
        return f"{row.id} is {row.status} and can no longer be decided"

    def _refuse(self, user: str, what: str, row: Any, why: str,
                exc: type[Exception] = DecisionError) -> Any:
        self._audit_refusal(user, what, row.id if row is not None else "?", why)
        raise exc(why)

    def _audit_refusal(self, user: str, what: str, entity_id: str, why: str) -> None:
        now = self.clock.now()
        audit.append(self.store.engine, user or "?", "decision.refused", "recommendation",
                     entity_id, {"attempt": what, "reason": why}, ts=now)
        self.bus.publish(DecisionEvent(now, f"{what} refused: {why}",
                                       recommendation_id=entity_id, verdict="refused",
                                       user_id=user, detail={"reason": why}))


def verify_decisions(store: Store, rec_id: str) -> list[tuple[int, bool]]:
    """Each signed decision on a recommendation, and whether the record still hashes to what
    was signed (False: the content changed after signing)."""
    with guard(store), store.session() as s:
        row = s.get(Recommendation, rec_id)
        if row is None:
            raise DecisionError(f"no recommendation {rec_id!r}")
        current = record_hash_of(row)
        with store.begin() as conn:
            decs = conn.execute(select(DEC.c.id, DEC.c.record_hash).where(
                DEC.c.recommendation_id == rec_id).order_by(DEC.c.id)).all()
    return [(int(d.id), d.record_hash == current) for d in decs]


class _Lost(Exception):
    """The conditional update found the recommendation no longer proposed."""


def compensation(kind: str, params: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """Parameters of the action that undoes a finished one."""
    if kind == "hold_lots":
        return {"hold_id": result.get("hold_id"), "disposition": "use_as_is",
                "reason": "undo of an automatic hold"}
    if kind == "create_work_order":
        return {"work_order_id": result.get("work_order_id")}
    if kind == "write_setpoint":
        return {**params, "value": params.get("previous"), "previous": params.get("value")}
    if kind == "replenish":
        batch = params.get("batch_id")
        return {"material_id": params.get("material_id"), "batch_id": batch,
                "from_stock": f"{params.get('to_location')}:{batch}",
                "from_location": params.get("to_location"),
                "to_location": params.get("from_location"), "quantity": params.get("quantity")}
    raise DecisionError(f"{kind} has no undo")


def _iso(v: datetime | None) -> str | None:
    return ensure_utc(v).isoformat() if v else None
