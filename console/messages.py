"""Typed messages: the only way background work (workers, the runtime's bus) reaches widgets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from textual.message import Message

from core.views import (
    EquipmentDetail,
    Explanation,
    LotDetail,
    PlanTimeline,
    PlantSnapshot,
    RecommendationDetail,
)


class SnapshotReady(Message):
    """A fresh read of the store; views diff it against what they show."""

    def __init__(self, snapshot: PlantSnapshot, autonomy: dict[str, str] | None = None,
                 taken_at: datetime | None = None) -> None:
        self.snapshot = snapshot
        self.autonomy = autonomy or {}
        self.taken_at = taken_at  # plant time when the read began
        super().__init__()


class StoreUnavailable(Message):
    """The store could not be read this time (locked, missing); shown, then retried."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__()


class CommandEntered(Message):
    """A `:` command from the command bar."""

    def __init__(self, command: str) -> None:
        self.command = command
        super().__init__()


class BusActivity(Message):
    """Engine events are waiting in the app's buffer; one message drains many (coalesced)."""


class OeeReady(Message):
    """OEE today per equipment (core.oee.Oee by equipment id)."""

    def __init__(self, oee: dict[str, Any]) -> None:
        self.oee = oee
        super().__init__()


class PlanReady(Message):
    def __init__(self, timeline: PlanTimeline) -> None:
        self.timeline = timeline
        super().__init__()


class RecommendationLoaded(Message):
    """A recommendation read for a purpose: 'approve', 'reject' or 'show'."""

    def __init__(self, detail: RecommendationDetail, record_hash: str, purpose: str) -> None:
        self.detail = detail
        self.record_hash = record_hash
        self.purpose = purpose
        super().__init__()


class LotLoaded(Message):
    def __init__(self, detail: LotDetail) -> None:
        self.detail = detail
        super().__init__()


class ActionDone(Message):
    """A decision or alarm operation finished (ok) or was refused (the reason in text)."""

    def __init__(self, what: str, ok: bool, text: str) -> None:
        self.what = what
        self.ok = ok
        self.text = text
        super().__init__()


class EquipmentLoaded(Message):
    """One machine's tags and model explanation, read by the equipment page's worker."""

    def __init__(self, detail: EquipmentDetail, why: Explanation | None) -> None:
        self.detail = detail
        self.why = why
        super().__init__()


class RuntimeReady(Message):
    """The plant runtime started in its worker: the console follows its clock and alarms."""

    def __init__(self, started: Any) -> None:
        self.started = started  # console.runtime_link.RuntimeStarted
        super().__init__()


class RuntimeFailed(Message):
    """The runtime could not start; the console stays on the store and says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__()
