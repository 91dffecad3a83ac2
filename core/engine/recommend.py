"""Recommend: one open recommendation per problem, merged, ranked, withheld, expired, superseded.

The detector may fire the same problem every few seconds; a person must see one row
that gets sharper (rationale, evidence, confidence) rather than a pile of duplicates.
Every state change commits together with its audit entry, so the chain and the table
never disagree.

States: ``withheld`` (inputs Bad/Uncertain: shown, not approvable) ⇄ ``proposed`` →
``approved | rejected | expired | superseded`` (``approved → executing → executed |
failed`` belongs to the outbox).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlmodel import col
from sqlmodel import select as sselect

from core import audit
from core.clock import Clock, ensure_utc
from core.config.schema import Auth as AuthSettings
from core.engine.analyze import Analysis, analyze
from core.engine.detection import DetectionLike, context_of, evidence_of
from core.engine.rules import (
    TTL_S,
    Proposal,
    Replanner,
    RuleContext,
    decision_class_for,
    propose,
)
from core.engine.txn import write_txn
from core.events import EventBus, RecommendationEvent, detection_event
from core.statuses import REC_IN_FLIGHT, REC_OPEN
from core.store import StoreError
from core.store.db import Store, guard
from core.store.models import Recommendation

log = logging.getLogger(__name__)
REC = Recommendation.__table__  # type: ignore[attr-defined]
HISTORY_MAX = 20
ACTOR = "system:engine"


def record_of(row: Any) -> dict[str, Any]:
    """The fields a signature covers: what the person was shown.

    Lifecycle fields (status, updated_at, superseded_by) are left out, so the hash of an
    approved row still equals the hash in its Decision unless its content was changed.
    """
    return {
        "id": row.id, "decision_class": row.decision_class, "target": row.target,
        "action": row.action, "params": row.params, "rationale": row.rationale,
        "evidence": row.evidence, "confidence": row.confidence,
        "expected_impact": row.expected_impact, "required_role": row.required_role,
        "problem_key": row.problem_key, "created_at": _iso(row.created_at),
        "expires_at": _iso(row.expires_at),
    }


def record_hash_of(row: Any) -> str:
    return audit.record_hash(record_of(row))


def impact_score(row: Any) -> float:
    try:
        return float(json.loads(row.evidence or "{}").get("impact", {}).get("score", 0.0))
    except (ValueError, AttributeError, TypeError):
        return 0.0


@dataclass
class Submitted:
    """What a detection did: created | merged | superseded | withheld | in_flight | ignored."""

    outcome: str
    recommendation_id: str | None = None
    superseded_id: str | None = None
    message: str = ""
    action_id: int | None = None  # set when policy approved it at once (outbox row)


class Recommender:
    def __init__(self, store: Store, clock: Clock, auth_settings: AuthSettings | None = None,
                 bus: EventBus | None = None, replanner: Replanner | None = None,
                 publish_detections: bool = False) -> None:
        self.store = store
        self.publish_detections = publish_detections  # DetectLoop already publishes them
        self.clock = clock
        self.perms = (auth_settings or AuthSettings()).permissions
        self.bus = bus or EventBus()
        self.replanner = replanner

    def required_role(self, decision_class: str) -> str:
        """The least privileged role allowed to decide (admin only as a last resort)."""
        roles = [r for r, cls in self.perms.items() if decision_class in cls]
        plain = [r for r in roles if r != "admin"]
        return (plain or roles or ["admin"])[0]

    # ------------------------------------------------------------ detections

    def submit(self, det: DetectionLike) -> Submitted:
        """Analyse a detection and create, merge, supersede or withhold its recommendation."""
        now = self.clock.now()
        if self.publish_detections:
            self.bus.publish(detection_event(det, now))
        if det.cleared:
            return Submitted("ignored", message="detection cleared: nothing to recommend")
        self.expire_stale()
        an = analyze(self.store, det)
        try:
            prop = self._reuse_open_replan(det) if decision_class_for(det) == "replan" \
                else None
            prop = prop or propose(RuleContext(self.store, now, self.replanner), det, an)
        except StoreError:
            raise
        except Exception as e:  # a broken rule (or scheduler) must not stop the loop
            log.exception("recommendation rule failed for %s", det.problem_key)
            audit.append(self.store.engine, ACTOR, "rec.rule_failed", "problem",
                         det.problem_key, {"error": f"{type(e).__name__}: {e}"}, ts=now)
            return Submitted("ignored", message=f"the rule for {det.problem_key} failed: {e}")
        if prop is None:
            return Submitted("ignored", message=f"no action answers a {det.kind} detection "
                                                f"from {det.detector_id}")
        return self._upsert(det, an, prop, now)

    def _reuse_open_replan(self, det: DetectionLike) -> Proposal | None:
        """A re-plan already proposed for this problem is reused: solving again on every
        repeat of the same 'down' detection would pile up plans nobody asked for."""
        with guard(self.store), self.store.begin() as conn:
            row = conn.execute(select(REC).where(
                REC.c.problem_key == det.problem_key, REC.c.status.in_(REC_OPEN),
                REC.c.decision_class == "replan")).first()
        if row is None:
            return None
        ev = json.loads(row.evidence or "{}")
        imp = ev.get("impact", {})
        return Proposal("replan", row.target, json.loads(row.params or "{}"),
                        row.expected_impact, float(imp.get("score", 0.0)),
                        float(row.confidence or 0.0), str(ev.get("note", "")),
                        TTL_S["replan"])

    def _evidence(self, det: DetectionLike, an: Analysis, prop: Proposal,
                  history: list[dict[str, Any]]) -> dict[str, Any]:
        ev = evidence_of(det)
        entry = {"onset": _iso(det.onset), "value": det.value, "detector_id": det.detector_id}
        hist = ([*history, entry])[-HISTORY_MAX:]
        return {
            "detection": {"kind": det.kind, "detector_id": det.detector_id,
                          "tag_id": det.tag_id, "priority": det.priority,
                          "value": det.value, "onset": _iso(det.onset),
                          "summary": det.summary},
            "signals": ev.get("signals", []), "contributions": ev.get("contributions", []),
            "context": an.context, "quality": an.quality,
            "impact": {"score": prop.impact_score, "text": prop.expected_impact},
            "note": prop.note, "history": hist, "count": len(hist), **prop.extra_evidence,
        }

    def _rationale(self, an: Analysis, prop: Proposal) -> str:
        parts = [an.rationale] + ([prop.note] if prop.note else [])
        if an.quality != "good":
            parts.append(f"WITHHELD: inputs are {an.quality}; check the data before acting")
        return "; ".join(p for p in parts if p)

    def _upsert(self, det: DetectionLike, an: Analysis, prop: Proposal,
                now: datetime) -> Submitted:
        status = "proposed" if an.quality == "good" else "withheld"
        with write_txn(self.store) as conn:
            rows = conn.execute(select(REC).where(
                REC.c.problem_key == det.problem_key,
                REC.c.status.in_(REC_OPEN + REC_IN_FLIGHT))).all()
            flight = [r for r in rows if r.status in REC_IN_FLIGHT]
            if flight:  # already being acted on: keep the evidence in the chain only
                audit.append(conn, ACTOR, "rec.evidence_while_in_flight", "recommendation",
                             flight[0].id, {"onset": _iso(det.onset), "value": det.value},
                             ts=now)
                return Submitted("in_flight", flight[0].id,
                                 message=f"{flight[0].id} is already {flight[0].status}")
            open_row = next((r for r in rows if r.status in REC_OPEN), None)
            if open_row is None:
                rid = self._insert(conn, det, an, prop, status, now, [])
                result = Submitted("withheld" if status == "withheld" else "created", rid)
            elif prop.same_action(open_row.decision_class, open_row.target, open_row.action) \
                    or prop.impact_score <= impact_score(open_row):
                result = self._merge(conn, open_row, det, an, prop, status, now)
            else:
                rid = self._insert(conn, det, an, prop, status, now,
                                   json.loads(open_row.evidence or "{}").get("history", []))
                conn.execute(update(REC).where(REC.c.id == open_row.id).values(
                    status="superseded", superseded_by=rid, updated_at=now))
                audit.append(conn, ACTOR, "rec.superseded", "recommendation", open_row.id,
                             {"by": rid, "old_score": impact_score(open_row),
                              "new_score": prop.impact_score}, ts=now)
                result = Submitted("superseded", rid, open_row.id)
        self._publish(result, det, prop, now)
        return result

    def _insert(self, conn: Connection, det: DetectionLike, an: Analysis, prop: Proposal,
                status: str, now: datetime, history: list[dict[str, Any]]) -> str:
        rid = f"REC-{uuid.uuid4().hex[:12]}"
        ev = self._evidence(det, an, prop, history)
        conn.execute(insert(REC).values(
            id=rid, decision_class=prop.decision_class, target=prop.target,
            action=prop.action, params=_dumps(prop.params),
            rationale=self._rationale(an, prop), evidence=_dumps(ev),
            confidence=round(prop.confidence, 4), expected_impact=prop.expected_impact,
            required_role=self.required_role(prop.decision_class), status=status,
            problem_key=det.problem_key, created_at=now, updated_at=now,
            expires_at=now + timedelta(seconds=prop.ttl_s)))
        audit.append(conn, ACTOR, "rec.created" if status == "proposed" else "rec.withheld",
                     "recommendation", rid,
                     {"class": prop.decision_class, "target": prop.target,
                      "action": prop.action, "params": prop.params,
                      "problem_key": det.problem_key, "score": prop.impact_score,
                      "quality": an.quality}, ts=now)
        return rid

    def _merge(self, conn: Connection, row: Any, det: DetectionLike, an: Analysis,
               prop: Proposal, status: str, now: datetime) -> Submitted:
        old_ev = json.loads(row.evidence or "{}")
        same = prop.same_action(row.decision_class, row.target, row.action)
        params = json.loads(row.params or "{}")
        if same:
            if prop.decision_class == "lot_hold":  # never drop a lot already named
                lots = list(params.get("lots", []))
                lots += [x for x in prop.params.get("lots", []) if x not in lots]
                params = {**prop.params, "lots": lots}
            else:
                params = prop.params
        ev = self._evidence(det, an, prop if same else _keep_impact(prop, old_ev),
                            old_ev.get("history", []))
        confidence = max(float(row.confidence or 0.0), prop.confidence) if same \
            else row.confidence
        values: dict[str, Any] = {
            "params": _dumps(params), "evidence": _dumps(ev),
            "rationale": self._rationale(an, prop) if same else row.rationale,
            "confidence": round(confidence, 4), "updated_at": now, "status": status,
            "expires_at": max(ensure_utc(row.expires_at),
                              now + timedelta(seconds=prop.ttl_s)) if row.expires_at
            else now + timedelta(seconds=prop.ttl_s),
        }
        if same:
            values["expected_impact"] = prop.expected_impact
        conn.execute(update(REC).where(REC.c.id == row.id).values(**values))
        action = "rec.merged"
        if status != row.status:
            action = "rec.withheld" if status == "withheld" else "rec.restored"
        audit.append(conn, ACTOR, action, "recommendation", row.id,
                     {"count": ev["count"], "quality": an.quality,
                      "confidence": values["confidence"], "same_action": same}, ts=now)
        return Submitted("withheld" if status == "withheld" else "merged", row.id)

    def _publish(self, res: Submitted, det: DetectionLike, prop: Proposal,
                 now: datetime) -> None:
        self.bus.publish(RecommendationEvent(
            now, f"{prop.decision_class} {prop.target}: {prop.expected_impact}",
            det.equipment_id, det.line_id, context_of(det).lot_id, context_of(det).order_id,
            res.recommendation_id,
            {"superseded": res.superseded_id, "score": prop.impact_score},
            res.outcome, prop.decision_class))

    # ------------------------------------------------------------ housekeeping

    def expire_stale(self) -> list[str]:
        """Open recommendations past their expiry become ``expired`` (audited)."""
        now = self.clock.now()
        done: list[str] = []
        stale = select(REC.c.id, REC.c.expires_at).where(REC.c.status.in_(REC_OPEN),
                                                          REC.c.expires_at <= now)
        with guard(self.store), self.store.engine.connect() as conn:
            # read first: runs before every submit, and a write transaction here would
            # queue behind the sample writer's for nothing almost every time
            if conn.execute(stale.limit(1)).first() is None:
                return done
        with guard(self.store), self.store.begin() as conn:
            rows = conn.execute(stale).all()
            for r in rows:
                res = conn.execute(update(REC).where(REC.c.id == r.id,
                                                     REC.c.status.in_(REC_OPEN))
                                   .values(status="expired", updated_at=now))
                if res.rowcount:
                    audit.append(conn, ACTOR, "rec.expired", "recommendation", r.id,
                                 {"expires_at": _iso(r.expires_at)}, ts=now)
                    done.append(r.id)
        for rid in done:
            self.bus.publish(RecommendationEvent(now, f"{rid} expired",
                                                 recommendation_id=rid, status="expired"))
        return done


def ranked(store: Store, statuses: tuple[str, ...] = REC_OPEN) -> list[Recommendation]:
    """Open recommendations, highest expected impact first (then newest)."""
    with guard(store), store.session() as s:
        rows = list(s.exec(sselect(Recommendation).where(
            col(Recommendation.status).in_(statuses))).all())
    rows.sort(key=lambda r: (-impact_score(r), -(ensure_utc(r.created_at).timestamp())))
    return rows


def _keep_impact(prop: Proposal, old_ev: dict[str, Any]) -> Proposal:
    """Merging weaker evidence of a different action: keep the open row's impact."""
    imp = old_ev.get("impact", {})
    return Proposal(prop.decision_class, prop.target, prop.params,
                    str(imp.get("text", prop.expected_impact)),
                    float(imp.get("score", prop.impact_score)), prop.confidence,
                    str(old_ev.get("note", "")), prop.ttl_s)


def _iso(v: Any) -> str | None:
    return ensure_utc(v).isoformat() if isinstance(v, datetime) else (v if v else None)


def _dumps(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str, ensure_ascii=False)


def request(store: Store, clock: Clock, decision_class: str, target: str, action: str,
            params: dict[str, Any], rationale: str, requested_by: str,
            required_role: str, ttl_s: float = 8 * 3600) -> str:
    """A person-initiated recommendation (e.g. release a hold): same lifecycle, same audit."""
    now = clock.now()
    rid = f"REC-{uuid.uuid4().hex[:12]}"
    with guard(store), store.begin() as conn:
        conn.execute(insert(REC).values(
            id=rid, decision_class=decision_class, target=target, action=action,
            params=_dumps(params), rationale=rationale,
            evidence=_dumps({"requested_by": requested_by, "impact": {"score": 0.0}}),
            confidence=1.0, expected_impact="", required_role=required_role,
            status="proposed", problem_key=f"request:{decision_class}:{target}",
            created_at=now, updated_at=now, expires_at=now + timedelta(seconds=ttl_s)))
        audit.append(conn, requested_by, "rec.requested", "recommendation", rid,
                     {"class": decision_class, "target": target, "params": params}, ts=now)
    return rid
