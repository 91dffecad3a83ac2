"""Samples older than their tag's newest are kept as Uncertain; a clock jump back opens one
episode (the runtime's data-quality alarm) that ends when time is in order again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.ingest.time_order import TimeOrder
from core.samples import Quality, Sample

T = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def s(tag: str, sec: float, value: float = 1.0, q: Quality = Quality.GOOD) -> Sample:
    return Sample(tag, T + timedelta(seconds=sec), value, q)


def test_older_samples_are_flagged_and_a_jump_is_one_episode() -> None:
    to = TimeOrder(jump_s=60)
    out = to.check([s("a", 0), s("a", 10), s("b", 10), s("a", 5)])
    assert [x.quality for x in out] == [Quality.GOOD] * 3 + [Quality.UNCERTAIN]
    assert "older than the tag's newest sample" in (out[3].reason or "")
    assert to.take() == []  # 5 s back is out of order, not a clock jump
    # the device restarts with its clock an hour back: every tag behind, one alarm
    out = to.check([s("a", 11), s("a", -3600), s("b", -3599), s("a", -3598)])
    assert [x.quality for x in out] == [Quality.GOOD] + [Quality.UNCERTAIN] * 3
    assert len(out) == 4 and [x.value for x in out] == [1.0] * 4  # nothing dropped
    [jump] = to.take()
    assert not jump.cleared and jump.tag_id == "a" and jump.back_s == 3611
    to.check([s("a", -3500), s("b", -3500)])
    assert to.take() == []  # still behind: the same episode
    bad = to.check([s("a", -3400, q=Quality.BAD)])
    assert bad[0].quality == Quality.BAD and bad[0].reason is None  # Bad stays as it was
    to.check([s("a", 20), s("b", 20)])
    [end] = to.take()
    assert end.cleared
    assert to.flagged == 6 and to.jumps == 1


def test_a_sample_far_in_the_future_is_flagged_and_does_not_poison_the_tag() -> None:
    to = TimeOrder(future_s=3600)
    now = T + timedelta(seconds=100)
    out = to.check([s("a", 90), s("a", 86400 * 365), s("a", 95), s("a", 99)], now)
    assert [x.quality for x in out] == [Quality.GOOD, Quality.UNCERTAIN, Quality.GOOD,
                                        Quality.GOOD]
    assert "ahead of the plant clock" in (out[1].reason or "")
    assert to.take() == []
