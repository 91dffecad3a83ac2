"""Part counters read from devices, turned into booked parts: wraps, restarts, jumps.

A device counter only ever counts up, so a reading is booked as the difference to the
last reading the driver delivered (kept in memory, and in the store's meta with every
flush, so a loopline restart counts on from there). What makes that hard:

- **wrap**: the counter rolled over at its modulus (``uint16`` 65,536, ``uint32`` 2^32,
  or the tag's ``rollover = N``); the parts are ``modulus - last + new``.
- **restart**: the device (or its PLC program) started counting again from 0. A value
  below the last one is a wrap only if the wrap distance is plausible; otherwise it is a
  restart and the new value is what was counted since (from 0). A ``reset`` note says
  so, with the last value seen before it, so nothing the driver saw is lost.
- **implausible**: more parts than the machine's ideal cycle allows in the elapsed time
  (``elapsed / ideal_cycle_s × rate_tolerance``, plus a grace for sampling jitter and
  one part in progress) are refused: nothing is booked, the counter is re-based on the
  new value, and an ``implausible`` note asks for a data-quality alarm; the next
  plausible reading clears it (``ok`` note).
- **stall**: an unchanged value books nothing.

Without a known ideal cycle (or without the time of the last reading) a wrap is taken
as plausible when it is at most a quarter of the modulus and ``max_step``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from core.clock import ensure_utc, parse_utc
from core.events import CounterEvent, CounterResetEvent, EngineEvent

MODULUS: dict[str, int] = {"uint16": 1 << 16, "int16": 1 << 16, "uint32": 1 << 32,
                           "int32": 1 << 32, "int64": 1 << 64}

NoteKind = Literal["wrap", "reset", "implausible", "ok"]


@dataclass(frozen=True)
class CounterSpec:
    equipment_id: str
    modulus: int | None  # None: a float counter never wraps, a drop is a restart
    ideal_cycle_s: float | None = None


@dataclass(frozen=True)
class CounterNote:
    """Something worth telling about one counter reading (not the plain increments)."""

    kind: NoteKind
    tag_id: str
    equipment_id: str
    ts: datetime
    last: int
    new: int
    booked: int  # parts booked for this reading
    allowed: int | None = None  # the plausibility cap that applied, if any
    elapsed_s: float | None = None

    @property
    def summary(self) -> str:
        if self.kind == "reset":
            return (f"{self.tag_id}: counter restarted ({self.last} -> {self.new}); "
                    f"{self.booked} part(s) counted since the restart")
        if self.kind == "wrap":
            return f"{self.tag_id}: counter rolled over ({self.last} -> {self.new}), +{self.booked}"
        if self.kind == "implausible":
            return (f"{self.tag_id}: implausible count {self.last} -> {self.new}: more than "
                    f"the {self.allowed} part(s) the ideal cycle allows in "
                    f"{self.elapsed_s or 0:.0f} s; not booked")
        return f"{self.tag_id}: counter plausible again ({self.new})"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "tag_id": self.tag_id, "equipment_id": self.equipment_id,
                "ts": ensure_utc(self.ts).isoformat(), "last": self.last, "new": self.new,
                "booked": self.booked, "allowed": self.allowed, "elapsed_s": self.elapsed_s}


class CounterBook:
    """The last reading of every counter tag and the rules that turn a reading into parts."""

    def __init__(self, specs: dict[str, CounterSpec], *, max_step: int = 100_000,
                 rate_tolerance: float = 1.5, grace_s: float = 5.0) -> None:
        self.specs = specs
        self.max_step = max_step
        self.rate_tolerance = rate_tolerance
        self.grace_s = grace_s
        self.last: dict[str, tuple[int, datetime | None]] = {}
        self.flagged: set[str] = set()  # tags whose last jump was refused
        self.dirty = False  # last readings changed since dump()
        self.wraps = self.resets = self.refused = 0

    def set_ideal_cycle(self, ideal: dict[str, float]) -> None:
        """Ideal cycles per equipment (from master data) for specs that have none."""
        for tag, sp in list(self.specs.items()):
            if sp.ideal_cycle_s is None and ideal.get(sp.equipment_id):
                self.specs[tag] = CounterSpec(sp.equipment_id, sp.modulus,
                                              float(ideal[sp.equipment_id]))

    def allowed(self, tag: str, elapsed_s: float | None) -> int | None:
        """Most parts the machine can have made in ``elapsed_s`` (None: no cap known)."""
        sp = self.specs.get(tag)
        if sp is None or not sp.ideal_cycle_s or elapsed_s is None:
            return None
        return math.floor(max(0.0, elapsed_s + self.grace_s) / sp.ideal_cycle_s
                          * self.rate_tolerance) + 1

    def reading(self, tag: str, new: int, ts: datetime) -> tuple[int, CounterNote | None]:
        """Parts to book for one Good reading, and a note when it was not a plain step."""
        prev = self.last.get(tag)
        self.last[tag] = (new, ts)
        if prev is None:
            self.dirty = True
            return 0, None  # never seen: a bare baseline
        last, last_ts = prev
        if new == last:
            return 0, None  # a stall (or a repeated poll)
        self.dirty = True
        sp = self.specs.get(tag)
        eq = sp.equipment_id if sp else ""
        elapsed = (ts - last_ts).total_seconds() if last_ts is not None else None
        cap = self.allowed(tag, elapsed)

        def note(kind: NoteKind, booked: int) -> CounterNote:
            return CounterNote(kind, tag, eq, ts, last, new, booked, cap, elapsed)

        kind: NoteKind | None = None
        if new > last:
            delta = new - last
        else:
            mod = sp.modulus if sp else None
            wrap = mod - last + new if mod else None
            limit = cap if cap is not None else min(self.max_step, (mod or 0) // 4)
            if wrap is not None and 0 < wrap <= limit:
                delta, kind = wrap, "wrap"
            else:
                delta, kind = max(new, 0), "reset"  # restarted from 0, counted up to new
        if cap is not None and delta > cap:
            self.refused += 1
            self.flagged.add(tag)
            return 0, note("implausible", 0)
        was_flagged = tag in self.flagged
        self.flagged.discard(tag)
        if kind == "wrap":
            self.wraps += 1
            return delta, note("wrap", delta)
        if kind == "reset":
            self.resets += 1
            return delta, note("reset", delta)
        if was_flagged:
            return delta, note("ok", delta)
        return delta, None

    # ------------------------------------------------------------ persistence

    def dump(self) -> dict[str, list[Any]]:
        """The last readings (value, time, refused-and-not-cleared), for the store's meta,
        committed with the parts they booked."""
        self.dirty = False
        return {k: [v, ensure_utc(ts).isoformat() if ts else None, k in self.flagged]
                for k, (v, ts) in self.last.items()}

    def load(self, saved: dict[str, Any]) -> None:
        """Readings from ``dump`` (or the older ``{tag: value}`` form, without a time)."""
        for k, v in saved.items():
            if k not in self.specs:
                continue
            if isinstance(v, list):
                value, ts = int(v[0]), (parse_utc(v[1]) if v[1] else None)
                if len(v) > 2 and v[2]:
                    self.flagged.add(k)  # its data-quality alarm is still open
            else:
                value, ts = int(v), None
            self.last[k] = (value, ts)


def note_event(note: CounterNote) -> EngineEvent:
    """The note as an event for the bus: ``counter_reset``, or ``counter`` for the rest."""
    if note.kind == "reset":
        return CounterResetEvent(ts=note.ts, summary=note.summary,
                                 equipment_id=note.equipment_id or None, detail=note.as_dict(),
                                 tag_id=note.tag_id, booked=note.booked)
    return CounterEvent(ts=note.ts, summary=note.summary, equipment_id=note.equipment_id or None,
                        detail=note.as_dict(), event=f"counter_{note.kind}", tag_id=note.tag_id,
                        booked=note.booked)


def note_detection(note: CounterNote, line_id: str | None = None) -> Any:
    """A refused reading raises the machine's data-quality alarm (a ``bad_data``
    detection, grouped per equipment by the alarm manager); a booked reading clears it."""
    if note.kind == "wrap":
        return None
    from core.detect.events import Detection  # below core.production in import order

    return Detection(kind="bad_data", detector_id="counter_plausibility",
                     problem_key=f"counter:{note.tag_id}:implausible", priority="medium",
                     onset=note.ts, summary=note.summary, equipment_id=note.equipment_id or None,
                     line_id=line_id, tag_id=note.tag_id, value=float(note.new),
                     evidence=note.as_dict(), cleared=note.kind != "implausible")
