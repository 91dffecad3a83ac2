"""The evaluation's statistics, scenarios and report, without running a twin."""

from __future__ import annotations

import itertools
import math
import random
import tomllib
from pathlib import Path

import pytest

from runtime.eval_report import render
from runtime.evaluation import DIFF_ROWS, compare_seeds, paired_interval, t975
from runtime.scenarios import (
    ScenarioError,
    bottleneck_s,
    dump_master,
    find_scenario,
    load_scenario,
    scenario_master,
)
from sim.reliability import ReliabilityError, load_reliability, parse_reliability

REPO = Path(__file__).resolve().parents[2]


def test_paired_interval_matches_a_hand_computed_example() -> None:
    # differences 1, 2, 2: mean 5/3, sd sqrt(1/3), se 1/3, t(0.975, 2) = 4.303
    ci = paired_interval([1.0, 2.0, 3.0], [2.0, 4.0, 5.0])
    assert ci["n"] == 3
    assert ci["diff"] == pytest.approx(5 / 3)
    assert ci["sd"] == pytest.approx(math.sqrt(1 / 3))
    assert ci["lo"] == pytest.approx(5 / 3 - 4.303 / 3)
    assert ci["hi"] == pytest.approx(5 / 3 + 4.303 / 3)
    assert ci["significant"]
    # differences +1, -1, +2 straddle zero
    ci = paired_interval([0.0, 0.0, 0.0], [1.0, -1.0, 2.0])
    assert ci["lo"] < 0 < ci["hi"] and not ci["significant"]
    one = paired_interval([1.0], [3.0])
    assert one["diff"] == 2.0 and one["lo"] is None and not one["significant"]
    assert t975(4) == 2.776 and t975(22) == 2.086


def _arm(seed: int, oee: float, down: float, on_time: float | None) -> dict:
    return {"seed": seed, "oee": oee, "unplanned_downtime_h": down,
            "on_time_delivery": on_time, "oee_per_day": [oee, oee],
            "downtime_per_machine_h": {"A-LATHE1": down}}


def test_compare_seeds_pairs_by_seed_and_says_which_way_is_better() -> None:
    offs = [_arm(1, 0.60, 10.0, 0.8), _arm(2, 0.62, 12.0, None), _arm(3, 0.58, 8.0, 0.7)]
    ons = [_arm(1, 0.70, 4.0, 0.9), _arm(2, 0.71, 5.0, 0.9), _arm(3, 0.69, 3.0, 0.75)]
    res = compare_seeds(offs, ons)
    rows = {r["kpi"]: r for r in res["rows"]}
    assert [r["kpi"] for r in res["rows"]] == [k for k, *_ in DIFF_ROWS]
    assert rows["oee"]["diff"] == pytest.approx(0.1)
    assert rows["oee"]["verdict"] == "better"
    assert rows["unplanned_downtime_h"]["diff"] == pytest.approx(-6.0)
    assert rows["unplanned_downtime_h"]["verdict"] == "better"  # less downtime is better
    assert rows["unplanned_downtime_h"]["relative"] == pytest.approx(-0.6)
    assert rows["on_time_delivery"]["n"] == 2  # the seed without a value drops out
    assert rows["mean_tardiness_h"]["n"] == 0 and rows["mean_tardiness_h"]["diff"] is None
    assert len(res["seeds"]) == 3 and res["off"] is None


def test_report_holds_the_table_intervals_and_both_charts() -> None:
    offs = [_arm(1, 0.60, 10.0, 0.8), _arm(2, 0.62, 12.0, 0.8)]
    ons = [_arm(1, 0.70, 4.0, 0.9), _arm(2, 0.72, 5.0, 0.85)]
    res = compare_seeds(offs, ons)
    res["options"] = {"days": 2, "seed": 1, "seeds": 2, "speed": 3600,
                      "start": "2026-01-05T06:00:00+00:00", "scenario": "loaded"}
    html = render(res)
    assert html.count("<svg") == 2
    assert "OEE per day" in html and "Unplanned downtime per machine" in html
    assert "A-LATHE1" in html and "day 2" in html
    assert "95 % interval" in html and "+10.0 pts" in html  # OEE's mean difference
    assert "scenario <b>loaded</b>" in html.lower() or "Scenario <b>loaded</b>" in html
    for _key, label, *_ in DIFF_ROWS:
        assert label.replace("&", "&amp;") in html


def test_both_scenarios_ship_and_an_unknown_one_is_refused() -> None:
    assert find_scenario("default", REPO).name == "default.toml"
    assert find_scenario("loaded", REPO).name == "loaded.toml"
    with pytest.raises(ScenarioError, match="default, loaded"):
        find_scenario("busy", REPO)


def test_the_loaded_book_fills_each_bottleneck_to_its_utilisation() -> None:
    from core.masterdata import read_master

    sc = load_scenario(find_scenario("loaded", REPO))
    master = tomllib.loads((REPO / "data/master.toml").read_text(encoding="utf-8"))
    out = scenario_master(master, sc, days=7, seed=5)
    bn = bottleneck_s(master)
    line_of = {p["id"]: p["line"] for p in master["products"]}
    change = {(c["line"], c["from"], c["to"]): c["minutes"] for c in out["changeovers"]}
    assert change[("B", "P-HS", "P-HL")] == 150  # the scenario's changeovers win
    for line in ("A", "B", "C"):
        mine = [o for o in out["orders"] if line_of[o["product"]] == line]
        work = sum(o["quantity"] * bn[o["product"]] / 3600 for o in mine)
        work += sum(change.get((line, a["product"], b["product"]), 0) / 60
                    for a, b in itertools.pairwise(mine)
                    if a["product"] != b["product"])
        span = max(o["release_h"] for o in mine)
        load = work / (span + work / len(mine)) / (23 / 24)
        assert 0.8 < load < 1.0, (line, load)
        assert all(o["due_h"] > o["release_h"] for o in mine)
    # the written master data passes the console's strict schema and the twin's reader
    path = Path("/tmp") / f"master-{random.randrange(1 << 30)}.toml"
    try:
        path.write_text(dump_master(out), encoding="utf-8")
        spec, _ = read_master(path)
        assert len(spec.orders) == len(out["orders"])
        from sim.master import load_master
        assert len(load_master(path).orders) == len(out["orders"])
    finally:
        path.unlink(missing_ok=True)
    # another seed is another week of the same plant
    assert scenario_master(master, sc, 7, 6)["orders"] != out["orders"]
    default = scenario_master(master, load_scenario(find_scenario("default", REPO)), 7, 5)
    assert len(default["orders"]) == 4 * len(master["orders"])  # repeated every 48 h


def test_reliability_tables_are_checked_and_drawn_in_range() -> None:
    rel = load_reliability(REPO / "data/scenarios/loaded.toml")
    rng = random.Random(1)
    draws = [rel.repair_s("extruder", rng) for _ in range(400)]
    assert all(4 * 3600 <= r - w <= 10 * 3600 for r, w in draws)
    waits = [w for _, w in draws if w]
    assert 0.2 < len(waits) / len(draws) < 0.4
    assert all(4 * 3600 <= w <= 16 * 3600 for w in waits)
    assert load_reliability(REPO / "data/scenarios/default.toml").repair_h == {}
    with pytest.raises(ReliabilityError, match="unknown key"):
        parse_reliability({"mttr": 3})
    with pytest.raises(ReliabilityError, match="low <= high"):
        parse_reliability({"repair_h": {"lathe": [5, 2]}})
