"""Samples that arrive older than their tag's newest, and clocks that jump back.

A device (or a twin) restarted with its clock set back sends new values with older
timestamps than the ones already kept. Stored as Good they would sit in history between
older values as if measured then, and a reader asking for "the newest" would get a
stale one. ``TimeOrder.check`` marks such a sample Uncertain with the reason and keeps
it (nothing is dropped); a jump back of more than ``jump_s`` opens one ``ClockJump``
episode, which the runtime raises as a data-quality alarm, and the episode ends once the
tags' samples are in order again. It works on the samples passing through, so it knows
nothing of how they are stored; after a runtime restart it starts from the first sample
of each tag.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from core.samples import Quality, Sample


@dataclass(frozen=True)
class ClockJump:
    """A clock went back (``cleared=False``) or is in order again (``cleared=True``)."""

    tag_id: str  # the first tag seen behind
    at: datetime  # the sample's own (older) time
    newest: datetime  # the tag's newest time before it
    back_s: float
    cleared: bool = False


class TimeOrder:
    """``future_s``: how far ahead of the plant clock a sample may be (a twin at 3600×
    runs ~1 h ahead of a clock synced a second ago); one further ahead is marked
    Uncertain and does not become the tag's newest, or it would make every real sample
    after it look old."""

    def __init__(self, jump_s: float = 60.0, future_s: float = 6 * 3600.0) -> None:
        self.jump_s = jump_s
        self.future_s = future_s
        self.newest: dict[str, datetime] = {}
        self.behind: set[str] = set()  # tags whose latest sample came in behind
        self.flagged = 0  # samples marked Uncertain for their time
        self.jumps = 0
        self._episode = False
        self._pending: deque[ClockJump] = deque()  # filled on the loop, taken elsewhere

    def check(self, samples: Sequence[Sample], now: datetime | None = None) -> list[Sample]:
        """The batch with out-of-order samples marked Uncertain (same order, same count)."""
        out: list[Sample] = []
        newest, behind = self.newest, self.behind
        ahead = now + timedelta(seconds=self.future_s) if now is not None else None
        for s in samples:
            if s.quality == Quality.BAD:  # no value to misplace (lost-connection markers)
                out.append(s)
                continue
            if ahead is not None and s.source_ts > ahead:
                self.flagged += 1
                out.append(replace(s, quality=Quality.UNCERTAIN,
                                   reason=f"timestamp {s.source_ts.isoformat()} is ahead of "
                                   f"the plant clock ({now.isoformat() if now else ''})"))
                continue
            top = newest.get(s.tag_id)
            if top is None or s.source_ts >= top:
                newest[s.tag_id] = s.source_ts
                behind.discard(s.tag_id)
                out.append(s)
                continue
            back = (top - s.source_ts).total_seconds()
            behind.add(s.tag_id)
            self.flagged += 1
            if back > self.jump_s and not self._episode:
                self._episode = True
                self.jumps += 1
                self._pending.append(ClockJump(s.tag_id, s.source_ts, top, back))
            out.append(replace(s, quality=Quality.UNCERTAIN,
                               reason=f"older than the tag's newest sample "
                               f"({top.isoformat()}) by {back:g} s"))
        if self._episode and not behind:
            self._episode = False
            s = samples[-1]
            self._pending.append(ClockJump(s.tag_id, s.source_ts, s.source_ts, 0.0, True))
        return out

    def take(self) -> list[ClockJump]:
        """Jumps (and their ends) since the last call; safe from another thread."""
        got: list[ClockJump] = []
        while self._pending:
            got.append(self._pending.popleft())
        return got
