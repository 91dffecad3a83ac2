"""ISA-18.2 alarm management on a real SQLite store, time driven by a FrozenClock."""

from __future__ import annotations

import pytest
from detect_helpers import at
from sqlalchemy import select

from core import audit
from core.alarms import AlarmError, AlarmManager, AlarmPolicy
from core.detect.events import Detection
from core.store.models import Alarm


def det(key: str, t: float, *, cleared: bool = False, eq: str = "A-LATHE1",
        kind: str = "limit", priority: str = "high", **kw: object) -> Detection:
    return Detection(kind=kind, detector_id="d", problem_key=key,  # type: ignore[arg-type]
                     priority=priority, onset=at(t), ts=at(t),  # type: ignore[arg-type]
                     summary=f"{key} {'cleared' if cleared else 'raised'}", equipment_id=eq,
                     line_id=eq[0], tag_id=None, value=1.0, cleared=cleared, **kw)  # type: ignore[arg-type]


@pytest.fixture
def mgr(store, loaded_config, frozen_clock) -> AlarmManager:  # type: ignore[no-untyped-def]
    return AlarmManager.from_config(store, loaded_config, frozen_clock)


def row(store, alarm_id: int):  # type: ignore[no-untyped-def]
    with store.begin() as c:
        return c.execute(select(Alarm.__table__).where(Alarm.__table__.c.id == alarm_id)).one()


def events(changes) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.event for c in changes]


KEY = "limit:A-LATHE1.bearing_temp:hi"


def test_raise_ack_clear_returns_to_normal(mgr, store, frozen_clock) -> None:  # type: ignore[no-untyped-def]
    ch = mgr.on_detection(det(KEY, 0))
    assert events(ch) == ["raised"]
    aid = ch[0].alarm_id
    r = row(store, aid)
    assert (r.source, r.state, r.acked, r.priority) == (KEY, "active", False, "high")
    assert mgr.get(aid).status == "active, unacknowledged" and ch[0].position == "A"
    assert mgr.on_detection(det(KEY, 5)) == []  # the same problem again: no second alarm
    frozen_clock.advance(30)
    ch = mgr.ack(aid, "olga", "looking at it")
    assert events(ch) == ["acked"] and ch[0].actor == "olga"
    assert mgr.get(aid).status == "active, acknowledged"
    entry = audit.recent(store.engine, 1)[0]
    assert (entry.actor, entry.action, entry.entity_id) == ("olga", "alarm.ack", str(aid))
    assert entry.detail["comment"] == "looking at it"
    ch = mgr.on_detection(det(KEY, 60, cleared=True))
    assert events(ch) == ["cleared", "normal"]
    assert mgr.get(aid) is None and mgr.open_alarms() == []
    r = row(store, aid)
    assert (r.state, r.acked, r.acked_by) == ("cleared", True, "olga")
    assert r.cleared_at == at(60) and r.acked_at == at(30)
    assert audit.verify(store.engine).ok


def test_return_to_normal_unacked_stays_visible_until_acked(mgr, store) -> None:  # type: ignore[no-untyped-def]
    aid = mgr.on_detection(det(KEY, 0))[0].alarm_id
    assert events(mgr.on_detection(det(KEY, 10, cleared=True))) == ["cleared"]
    rec = mgr.get(aid)
    assert rec.status == "returned to normal, unacknowledged"
    assert [r.id for r in mgr.open_alarms("A")] == [aid]
    assert (row(store, aid).state, row(store, aid).acked) == ("cleared", False)
    ch = mgr.on_detection(det(KEY, 20))  # back before anyone acked: the same alarm
    assert events(ch) == ["reraised"] and ch[0].alarm_id == aid
    assert mgr.get(aid).raise_count == 2
    mgr.on_detection(det(KEY, 30, cleared=True))
    assert events(mgr.ack(aid, "sam")) == ["acked", "normal"]


def test_ack_refusals_are_clear(mgr) -> None:  # type: ignore[no-untyped-def]
    aid = mgr.on_detection(det(KEY, 0))[0].alarm_id
    with pytest.raises(AlarmError, match="no alarm 999"):
        mgr.ack(999, "olga")
    with pytest.raises(AlarmError, match="unknown user 'mallory'"):
        mgr.ack(aid, "mallory")
    mgr.ack(aid, "olga")
    with pytest.raises(AlarmError, match="already acknowledged by olga"):
        mgr.ack(aid, "sam")
    mgr.on_detection(det(KEY, 10, cleared=True))
    with pytest.raises(AlarmError, match="already returned to normal"):
        mgr.ack(aid, "sam")


def test_priority_escalation_updates_the_open_alarm(mgr, store) -> None:  # type: ignore[no-untyped-def]
    aid = mgr.on_detection(det(KEY, 0, priority="medium"))[0].alarm_id
    ch = mgr.on_detection(det(KEY, 5, priority="critical"))
    assert events(ch) == ["raised"] and ch[0].detail["escalated"]
    assert row(store, aid).priority == "critical"


def test_one_shot_shelve_hides_until_the_alarm_clears(mgr, store) -> None:  # type: ignore[no-untyped-def]
    aid = mgr.on_detection(det(KEY, 0))[0].alarm_id
    other = mgr.on_detection(det("limit:A-MILL1.bearing_temp:hi", 0, eq="A-MILL1"))[0].alarm_id
    ch = mgr.shelve(aid, "sam", "sensor being replaced")
    assert events(ch) == ["shelved"] and ch[0].detail["mode"] == "one_shot"
    assert [r.id for r in mgr.open_alarms("A")] == [other]
    assert [r.id for r in mgr.open_alarms("A", include_hidden=True)] == [aid, other]
    assert row(store, aid).shelved_until is not None  # capped by max_shelve_s
    e = audit.recent(store.engine, 1)[0]
    assert (e.actor, e.action, e.detail["reason"], e.detail["mode"]) == (
        "sam", "alarm.shelve", "sensor being replaced", "one_shot")
    ch = mgr.on_detection(det(KEY, 100, cleared=True))
    assert events(ch) == ["cleared", "unshelved", "normal"]
    e = audit.recent(store.engine, 1)[0]
    assert (e.actor, e.action) == ("system", "alarm.unshelve")
    r = row(store, aid)
    assert r.shelved_until is None and r.state == "cleared"


def test_timed_shelve_expires_on_the_clock(mgr, store, frozen_clock) -> None:  # type: ignore[no-untyped-def]
    aid = mgr.on_detection(det(KEY, 0))[0].alarm_id
    mgr.shelve(aid, "sam", "known issue, WO open", duration_s=600)
    assert row(store, aid).shelved_until == at(600)
    assert mgr.open_alarms() == []
    frozen_clock.advance(599)
    assert mgr.tick() == []
    frozen_clock.advance(2)
    ch = mgr.tick()
    assert events(ch) == ["unshelved"] and ch[0].actor == "system"
    assert [r.id for r in mgr.open_alarms()] == [aid]
    assert row(store, aid).shelved_until is None
    e = audit.recent(store.engine, 1)[0]
    assert (e.action, e.detail["reason"], e.detail["mode"]) == (
        "alarm.unshelve", "shelving time expired", "timed")
    assert mgr.tick() == []


def test_shelve_refusals(mgr, frozen_clock) -> None:  # type: ignore[no-untyped-def]
    aid = mgr.on_detection(det(KEY, 0))[0].alarm_id
    with pytest.raises(AlarmError, match="needs a reason"):
        mgr.shelve(aid, "sam", "  ")
    with pytest.raises(AlarmError, match="in the future"):
        mgr.shelve(aid, "sam", "x", until=at(-10))
    with pytest.raises(AlarmError, match="at most 8 h"):
        mgr.shelve(aid, "sam", "x", duration_s=9 * 3600)
    mgr.shelve(aid, "sam", "x", until=at(60))
    with pytest.raises(AlarmError, match="already shelved"):
        mgr.shelve(aid, "sam", "again")
    assert events(mgr.unshelve(aid, "sam")) == ["unshelved"]
    with pytest.raises(AlarmError, match="not shelved"):
        mgr.unshelve(aid, "sam")


def test_flood_starts_above_ten_in_ten_minutes_and_clears_below_five(mgr, frozen_clock) -> None:  # type: ignore[no-untyped-def]
    starts = []
    for i in range(10):
        starts += mgr.on_detection(det(f"limit:A-LATHE1.t{i}:hi", i * 10))
    assert "flood_start" not in events(starts)  # ten is not a flood
    for i in range(10):  # another position does not add to line A's count
        assert "flood_start" not in events(
            mgr.on_detection(det(f"limit:B-MOLD1.t{i}:hi", i * 10, eq="B-MOLD1")))
    ch = mgr.on_detection(det("limit:A-LATHE1.t10:hi", 100))
    assert events(ch) == ["raised", "flood_start"] and ch[1].position == "A"
    assert mgr.in_flood("A") and not mgr.in_flood("B")
    frozen_clock.set(at(655))  # raises at 60..100 still in the window: five
    assert mgr.tick() == []
    frozen_clock.set(at(665))  # four left
    ch = mgr.tick()
    assert events(ch) == ["flood_end"] and not mgr.in_flood("A")
    assert mgr.flood_time("A") == pytest.approx(565.0)
    assert mgr.floods == {"A": 1}


def test_shelved_and_suppressed_alarms_do_not_count_toward_a_flood(mgr) -> None:  # type: ignore[no-untyped-def]
    mgr.set_equipment_down("A-WASH1", True)
    for i in range(12):  # low limits of a machine that is down: suppressed by design
        ch = mgr.on_detection(det(f"limit:A-WASH1.t{i}:lo", i, eq="A-WASH1",
                                  evidence={"level": "lo"}))
        assert events(ch) == ["raised", "suppressed"]
    aid = mgr.on_detection(det(KEY, 20))[0].alarm_id
    mgr.shelve(aid, "sam", "flapping sensor", duration_s=3600)
    for t in range(30, 600, 90):  # re-raised while shelved: recorded, not annunciated
        mgr.on_detection(det(KEY, t + 5, cleared=True))
        assert "reraised" in events(mgr.on_detection(det(KEY, t + 60)))
    assert not mgr.in_flood("A") and mgr.annunciated_count.get("A") == 1


def test_chattering_is_flagged_and_optionally_auto_shelved(store, loaded_config,  # type: ignore[no-untyped-def]
                                                            frozen_clock) -> None:
    mgr = AlarmManager.from_config(store, loaded_config, frozen_clock,
                                   policy=AlarmPolicy(auto_shelve_chattering=True,
                                                      chatter_shelve_s=900))
    seen: list[str] = []
    for t in (0, 20, 40):
        seen += events(mgr.on_detection(det(KEY, t)))
        seen += events(mgr.on_detection(det(KEY, t + 5, cleared=True)))
    assert seen == ["raised", "cleared", "reraised", "cleared",
                    "reraised", "chattering", "shelved", "cleared"]
    rec = mgr.by_key(KEY)
    assert rec.chattering and rec.shelve_mode == "timed"
    e = next(x for x in audit.recent(store.engine, 5) if x.action == "alarm.shelve")
    assert e.actor == "system" and "chattering" in e.detail["reason"]


def test_three_raises_spread_over_more_than_a_minute_do_not_chatter(mgr) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    for t in (0, 40, 80):
        seen += events(mgr.on_detection(det(KEY, t)))
        seen += events(mgr.on_detection(det(KEY, t + 5, cleared=True)))
    assert "chattering" not in seen


def test_downstream_starved_is_suppressed_while_upstream_is_down(mgr, store) -> None:  # type: ignore[no-untyped-def]
    down = det("state:A-LATHE1:down_unplanned", 0, kind="state")
    assert events(mgr.on_detection(down)) == ["raised"]
    starved = det("state:A-MILL1:starved", 60, eq="A-MILL1", kind="state", priority="low")
    ch = mgr.on_detection(starved)
    assert events(ch) == ["raised", "suppressed"]
    assert "upstream A-LATHE1" in ch[1].detail["why"]
    aid = ch[0].alarm_id
    assert row(store, aid).suppressed
    assert aid not in [r.id for r in mgr.open_alarms("A")]
    ch = mgr.on_detection(det("state:A-LATHE1:down_unplanned", 120, kind="state",
                              cleared=True))
    assert events(ch) == ["cleared", "unsuppressed"] and ch[1].alarm_id == aid
    assert aid in [r.id for r in mgr.open_alarms("A")]  # annunciated now


def test_upstream_blocked_is_suppressed_while_downstream_is_down(mgr) -> None:  # type: ignore[no-untyped-def]
    mgr.on_detection(det("state:A-MILL1:down_unplanned", 0, eq="A-MILL1", kind="state"))
    ch = mgr.on_detection(det("state:A-LATHE1:blocked", 60, kind="state", priority="low"))
    assert events(ch) == ["raised", "suppressed"]
    assert ch[1].detail["why"] == "downstream A-MILL1 is down unplanned"
    ch = mgr.on_detection(det("state:A-GRIND1:blocked", 60, eq="A-GRIND1", kind="state"))
    assert events(ch) == ["raised"]  # GRIND1 is downstream of MILL1: its block is news


def test_equipment_back_up_unsuppresses_active_alarms(mgr, store) -> None:  # type: ignore[no-untyped-def]
    mgr.set_equipment_down("A-LATHE1", True)
    ch = mgr.on_detection(det("state:A-MILL1:starved", 0, eq="A-MILL1", kind="state"))
    aid = ch[0].alarm_id
    assert mgr.get(aid).suppressed == "upstream A-LATHE1 is down planned"
    ch = mgr.set_equipment_down("A-LATHE1", False)
    assert events(ch) == ["unsuppressed"] and not row(store, aid).suppressed
    assert [r.id for r in mgr.open_alarms("A")] == [aid]


def test_a_suppressed_alarm_that_clears_needs_no_ack(mgr) -> None:  # type: ignore[no-untyped-def]
    mgr.set_equipment_down("A-LATHE1", True)
    aid = mgr.on_detection(det("state:A-MILL1:starved", 0, eq="A-MILL1",
                               kind="state"))[0].alarm_id
    ch = mgr.on_detection(det("state:A-MILL1:starved", 10, eq="A-MILL1", kind="state",
                              cleared=True))
    assert events(ch) == ["cleared", "normal"] and mgr.get(aid) is None


def test_lo_limit_of_down_equipment_is_suppressed_hi_is_not(mgr) -> None:  # type: ignore[no-untyped-def]
    mgr.set_equipment_down("A-WASH1", True, "down planned")
    lo = det("limit:A-WASH1.pressure:lo", 0, eq="A-WASH1", evidence={"level": "lo"})
    hi = det("limit:A-WASH1.pressure:hi", 0, eq="A-WASH1", evidence={"level": "hi"})
    assert "suppressed" in events(mgr.on_detection(lo))
    assert "suppressed" not in events(mgr.on_detection(hi))


def test_restart_reloads_open_alarms_and_the_shelving_mode(store, loaded_config,  # type: ignore[no-untyped-def]
                                                          frozen_clock) -> None:
    m1 = AlarmManager.from_config(store, loaded_config, frozen_clock)
    a = m1.on_detection(det(KEY, 0))[0].alarm_id
    b = m1.on_detection(det("state:B-MOLD1:down_unplanned", 0, eq="B-MOLD1",
                            kind="state"))[0].alarm_id
    c = m1.on_detection(det("limit:C-EXTR1.bearing_temp:hi", 0, eq="C-EXTR1"))[0].alarm_id
    m1.shelve(a, "sam", "one-shot")
    m1.ack(c, "olga")
    m1.on_detection(det("limit:C-EXTR1.bearing_temp:hi", 5, eq="C-EXTR1", cleared=True))
    m2 = AlarmManager.from_config(store, loaded_config, frozen_clock)
    assert m2.load() == 2
    assert m2.get(a).shelve_mode == "one_shot" and m2.get(a).shelved_by == "sam"
    assert m2.get(b).position == "B" and m2.get(b).equipment_id == "B-MOLD1"
    assert m2.get(c) is None
    assert events(m2.on_detection(det(KEY, 50, cleared=True))) == [
        "cleared", "unshelved", "normal"]


def test_changes_become_engine_alarm_events(mgr) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("core.events")
    ch = mgr.on_detection(det(KEY, 0))[0]
    ev = ch.as_event()
    assert ev.kind == "alarm" and ev.alarm_id == ch.alarm_id and ev.state == "raised"
    assert ev.detail["problem_key"] == KEY and ev.detail["position"] == "A"


def test_stale_and_bad_tags_of_one_machine_share_one_alarm(mgr) -> None:  # type: ignore[no-untyped-def]
    got = []
    for i, tag in enumerate(("C-EXTR1.bearing_temp", "C-EXTR1.pressure", "C-EXTR1.zone_temp")):
        got += mgr.on_detection(det(f"bad_data:{tag}", i, eq="C-EXTR1", kind="bad_data",
                                    priority="low"))
    assert events(got) == ["raised"]
    assert got[0].problem_key == "data_quality:C-EXTR1" and "C-EXTR1.bearing_temp" in \
        got[0].message
    assert mgr.on_detection(det("bad_data:C-EXTR1.pressure", 10, eq="C-EXTR1",
                                kind="bad_data", cleared=True)) == []
    assert mgr.on_detection(det("stale:C-EXTR1.flow", 11, eq="C-EXTR1", kind="stale")) == []
    for key in ("bad_data:C-EXTR1.bearing_temp", "bad_data:C-EXTR1.zone_temp"):
        assert mgr.on_detection(det(key, 20, eq="C-EXTR1", kind="bad_data",
                                    cleared=True)) == []
    ch = mgr.on_detection(det("stale:C-EXTR1.flow", 30, eq="C-EXTR1", kind="stale",
                              cleared=True))
    assert events(ch) == ["cleared"] and ch[0].problem_key == "data_quality:C-EXTR1"


def test_only_spc_rule_one_reaches_the_operator_by_default(mgr) -> None:  # type: ignore[no-untyped-def]
    for rule in (2, 3, 7):
        assert mgr.on_detection(det(f"spc:diameter:A-GRIND1:rule{rule}", 0, eq="A-GRIND1",
                                    kind="spc", evidence={"rule": rule})) == []
    ch = mgr.on_detection(det("spc:diameter:A-GRIND1:rule1", 0, eq="A-GRIND1", kind="spc",
                              evidence={"rule": 1}))
    assert events(ch) == ["raised"]


def test_one_shot_shelving_is_capped_by_the_maximum_time(store, loaded_config,  # type: ignore[no-untyped-def]
                                                         frozen_clock) -> None:
    mgr = AlarmManager.from_config(store, loaded_config, frozen_clock,
                                   policy=AlarmPolicy(max_shelve_s=3600))
    aid = mgr.on_detection(det(KEY, 0))[0].alarm_id
    mgr.shelve(aid, "sam", "until it clears")
    frozen_clock.advance(3601)
    ch = mgr.tick()
    assert events(ch) == ["unshelved"]
    assert ch[0].detail["reason"] == "one-shot shelving reached its time limit"
    assert mgr.get(aid).state == "active" and [r.id for r in mgr.open_alarms()] == [aid]


def test_ack_position_acknowledges_only_that_positions_visible_alarms(mgr) -> None:  # type: ignore[no-untyped-def]
    a = mgr.on_detection(det(KEY, 0))[0].alarm_id
    b = mgr.on_detection(det("limit:B-MOLD1.pressure:hi", 0, eq="B-MOLD1"))[0].alarm_id
    assert events(mgr.ack_position("A", "olga")) == ["acked"]
    assert mgr.get(a).acked and not mgr.get(b).acked
