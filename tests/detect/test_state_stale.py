"""Equipment states (unplanned down, micro-stops, starved/blocked), stale tags, Bad runs."""

from __future__ import annotations

from detect_helpers import at, sample

from core.detect.stale import StaleDetector
from core.detect.state import StateDetector
from core.detect.tags import TagInfo
from core.samples import Quality

ST = "A-LATHE1.state"


def state_det(**kw: object) -> StateDetector:
    d = StateDetector("unplanned_down", "high", **kw)  # type: ignore[arg-type]
    assert d.add_tag(ST, "A-LATHE1", "A")
    return d


def feed(d: StateDetector, series: list[tuple[float, int]]) -> list:
    out = []
    for t, code in series:
        out.extend(d.feed(sample(ST, t, code)) or [])
    return out


def test_unplanned_down_fires_at_once_and_clears_with_the_downtime() -> None:
    d = state_det()
    assert feed(d, [(0, 1)]) == []
    got = feed(d, [(100, 4)])
    assert [(g.problem_key, g.cleared, g.priority) for g in got] == [
        ("state:A-LATHE1:down_unplanned", False, "high")]
    assert got[0].onset == at(100) and got[0].context["order_id"] == "PO-0001"
    got = feed(d, [(100 + 5400, 0)])
    assert len(got) == 1 and got[0].cleared and got[0].evidence["duration_s"] == 5400
    assert "90 min" in got[0].summary


def test_planned_down_and_setup_are_not_problems() -> None:
    d = state_det()
    assert feed(d, [(0, 1), (10, 3), (5000, 2), (9000, 1)]) == []
    assert d.tick(at(20000)) == []


def test_down_with_on_delay_fires_from_tick() -> None:
    d = state_det(on_delay_s=120)
    assert feed(d, [(0, 1), (10, 4)]) == []
    assert d.tick(at(100)) == []
    got = d.tick(at(131))
    assert len(got) == 1 and got[0].onset == at(10)


def test_micro_stops_are_counted_per_hour() -> None:
    d = state_det(micro_stop_max_s=120, micro_stops_per_h=6)
    series: list[tuple[float, int]] = [(0, 1)]
    t = 0.0
    for _ in range(5):  # five short stops: 30 s idle each, 5 min apart
        series += [(t + 300, 0), (t + 330, 1)]
        t += 300
    series += [(t + 300, 0), (t + 800, 1)]  # a long stop (500 s) is not a micro-stop
    got = feed(d, series)
    assert [g for g in got if "micro" in g.problem_key] == []
    assert d.micro_stops_last_hour("A-LATHE1") == 5
    t += 800
    got = feed(d, [(t + 60, 0), (t + 90, 1)])  # the sixth within the hour
    assert [(g.problem_key, g.cleared) for g in got] == [("state:A-LATHE1:micro_stops", False)]
    assert got[0].evidence["count_last_hour"] == 6
    assert d.tick(at(t + 100)) == []
    cleared = d.tick(at(t + 90 + 3600))  # all stops older than an hour
    assert [(g.problem_key, g.cleared) for g in cleared] == [
        ("state:A-LATHE1:micro_stops", True)]


def test_starved_and_blocked_only_after_their_delay_at_low_priority() -> None:
    d = state_det(starved_blocked_after_s=600)
    assert feed(d, [(0, 1), (10, 5), (300, 5)]) == []
    got = feed(d, [(620, 5)])
    assert [(g.problem_key, g.priority) for g in got] == [("state:A-LATHE1:starved", "low")]
    got = feed(d, [(700, 6)])
    assert [(g.problem_key, g.cleared) for g in got] == [("state:A-LATHE1:starved", True)]
    got = d.tick(at(1301))
    assert [g.problem_key for g in got] == ["state:A-LATHE1:blocked"]


def test_bad_state_samples_are_ignored() -> None:
    d = state_det()
    assert d.feed(sample(ST, 0, 4, Quality.BAD)) is None
    assert d.feed(sample(ST, 0, True)) is None


TAG = "A-LATHE1.vibration_rms"
INFO = TagInfo(TAG, "vibration_rms", "A-LATHE1", "A", "signal", "mm/s")


def regular(d: StaleDetector, tag: str, start: float, end: float, every: float = 1.0) -> None:
    t = start
    while t < end:
        assert not d.feed(sample(tag, t, 2.0 + t / 1000))
        t += every


def test_a_tag_never_heard_from_is_stale_after_its_limit() -> None:
    d = StaleDetector("stale_data", "low", stale_after_s=30)
    d.add_tag(INFO)
    d.expect([TAG], at(0))
    assert d.tick(at(30)) == []
    got = d.tick(at(31))
    assert [(g.kind, g.problem_key, g.cleared) for g in got] == [
        ("stale", f"stale:{TAG}", False)]
    assert d.tick(at(100)) == []  # reported once
    back = d.feed(sample(TAG, 120, 2.0)) or []
    assert [(g.kind, g.cleared) for g in back] == [("stale", True)]


def test_a_tag_that_usually_moves_is_stale_when_it_falls_silent() -> None:
    d = StaleDetector("stale_data", "low", stale_after_s=30)
    d.add_tag(INFO)
    regular(d, TAG, 0, 60)  # every second: its usual interval is 1 s
    assert d.watched(TAG)
    assert d.tick(at(89)) == []
    got = d.tick(at(90))
    assert [(g.kind, g.tag_id) for g in got] == [("stale", TAG)]
    assert "no update for 31 s" in got[0].summary
    assert [g.cleared for g in d.feed(sample(TAG, 95, 2.5)) or []] == [True]


def test_a_slow_or_new_tag_is_not_checked_for_silence() -> None:
    d = StaleDetector("stale_data", "low", stale_after_s=30)
    d.add_tag(INFO)
    regular(d, TAG, 0, 10)  # ten updates: not enough to know its rhythm
    assert not d.watched(TAG) and d.tick(at(300)) == []
    slow = TagInfo("A-LATHE1.bearing_temp", "bearing_temp", "A-LATHE1", "A", "signal", "°C")
    d.add_tag(slow)
    regular(d, slow.tag_id, 0, 25 * 6, every=6)  # a change every 6 s: 30 s of quiet is normal
    assert not d.watched(slow.tag_id) and d.tick(at(600)) == []


def test_silence_while_the_machine_is_stopped_is_not_stale() -> None:
    d = StaleDetector("stale_data", "low", stale_after_s=30)
    state = TagInfo("A-LATHE1.state", "state", "A-LATHE1", "A", "state")
    d.add_tag(state, check_stale=False)
    d.add_tag(INFO)
    d.feed(sample(state.tag_id, 0, 1))
    regular(d, TAG, 0, 60)
    d.feed(sample(state.tag_id, 60, 4))  # down: vibration holds still, rightly
    assert d.tick(at(600)) == []
    d.feed(sample(state.tag_id, 600, 1))  # running again: the clock starts now
    assert d.tick(at(630)) == []
    assert [g.tag_id for g in d.tick(at(631))] == [TAG]


def test_tags_not_checked_for_staleness_never_go_stale() -> None:
    d = StaleDetector("stale_data", stale_after_s=30)
    ctx = TagInfo("A-LATHE1.lot", "lot", "A-LATHE1", "A", "context")
    d.add_tag(ctx, check_stale=False)
    d.expect([ctx.tag_id], at(0))
    assert d.tick(at(3600)) == []


def test_a_bad_run_is_reported_once_it_lasts_and_ends_with_good_data() -> None:
    d = StaleDetector("stale_data", stale_after_s=30, bad_after_s=20)
    d.add_tag(INFO)
    assert d.feed(sample(TAG, 0, None, Quality.BAD, "timeout")) is None
    assert d.feed(sample(TAG, 1, 2.0)) is None  # a single timeout is not a problem
    assert d.feed(sample(TAG, 10, None, Quality.BAD, "timeout")) is None
    assert d.tick(at(29)) == []
    got = d.tick(at(30))
    assert [(g.kind, g.problem_key, g.quality) for g in got] == [
        ("bad_data", f"bad_data:{TAG}", Quality.BAD)]
    assert "timeout" in got[0].summary and got[0].onset == at(10)
    assert d.feed(sample(TAG, 31, None, Quality.BAD)) is None
    got = d.feed(sample(TAG, 40, 2.1)) or []
    assert [(g.kind, g.cleared) for g in got] == [("bad_data", True)]


def test_uncertain_run_reported_from_the_sample_itself() -> None:
    d = StaleDetector("stale_data", stale_after_s=30, bad_after_s=20)
    d.add_tag(INFO)
    d.feed(sample(TAG, 0, 2.0, Quality.UNCERTAIN))
    got = d.feed(sample(TAG, 25, 2.0, Quality.UNCERTAIN)) or []
    assert [(g.kind, g.quality) for g in got] == [("bad_data", Quality.UNCERTAIN)]


def test_a_tag_heard_only_while_stopped_is_not_taken_for_never_heard() -> None:
    d = StaleDetector("stale_data", "low", stale_after_s=30)
    state = TagInfo("A-WASH1.state", "state", "A-WASH1", "A", "state")
    vib = TagInfo("A-WASH1.vibration_rms", "vibration_rms", "A-WASH1", "A", "signal")
    d.add_tag(state, check_stale=False)
    d.add_tag(vib)
    d.expect([vib.tag_id], at(0))
    d.feed(sample(state.tag_id, 1, 5))  # starved from the start
    d.feed(sample(vib.tag_id, 1, 0.05))  # settles and holds still, rightly
    assert d.tick(at(3600)) == []


def test_silence_during_a_bad_run_is_reported_as_bad_data_only() -> None:
    d = StaleDetector("stale_data", "low", stale_after_s=30)
    d.add_tag(INFO)
    regular(d, TAG, 0, 60)
    d.feed(sample(TAG, 60, None, Quality.BAD, "comms lost"))  # then nothing
    got = d.tick(at(200))
    assert [g.kind for g in got] == ["bad_data"]
