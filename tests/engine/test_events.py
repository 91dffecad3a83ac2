"""The event bus: ordered, cheap, JSON with UTC times, a broken subscriber cannot stop it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from core.events import (
    DecisionEvent,
    EventBus,
    EventLog,
    ExecutionEvent,
    RecommendationEvent,
)


def test_events_serialise_with_utc_and_ids():
    ts = datetime(2026, 1, 5, 8, 0, tzinfo=timezone(timedelta(hours=2)))
    ev = RecommendationEvent(ts, "hold L-00101", "A-GRIND1", "A", "L-00101", "PO-0001",
                             "REC-1", {"score": 3.5}, "proposed", "lot_hold")
    d = json.loads(ev.to_json())
    assert d["kind"] == "recommendation" and d["ts"] == "2026-01-05T06:00:00+00:00"
    assert (d["lot_id"], d["recommendation_id"], d["decision_class"]) == (
        "L-00101", "REC-1", "lot_hold")
    assert d["detail"] == {"score": 3.5}


def test_bus_delivers_in_order_and_survives_a_broken_subscriber():
    bus = EventBus()
    def broken(_ev):
        raise RuntimeError("viewer crashed")
    bus.subscribe(broken)
    log = EventLog(bus)
    now = datetime(2026, 1, 5, tzinfo=UTC)
    bus.publish(DecisionEvent(now, "a", verdict="approved"))
    bus.publish(ExecutionEvent(now, "b", action_id=1, status="done"))
    assert [e.kind for e in log.events] == ["decision", "execution"]
    unsubscribe = bus.subscribe(log2 := EventLog())
    unsubscribe()
    bus.publish(DecisionEvent(now, "c"))
    assert log2.events == [] and len(log.of("decision")) == 2
