"""ML: train time, scoring latency (1,000 equipment), failure lead time, scrap AUC, C-MAPSS RMSE.

Scoring latency is measured beside a raw xgboost ``inplace_predict`` on the same matrix
(median of repeats), so the figure is the pipeline's overhead over the bare model (the
raw call runs at the thread count scoring picks, 1 for a batch this small; the same
booster on 2 threads is shown too: on 2 busy cores that is the slow one); that
part runs on ml.synthetic's seeded generator (1,000 equipment, which the twin does not
have). Failure prediction and scrap AUC are reported twice: on the synthetic plant and
on the plant twin (bench/ml_twin.py: the twin's core in-process, random faults, frames
as ml.store_source gives them), scored against the twin's ground truth. C-MAPSS figures
use the FD001 training file with whole engines held out (bench/data/cmapss).

    python -m bench ml [--equipment 1000] [--days 2] [--seeds 3] [--twin-days 7]
                       [--twin-faults-per-day 4] [--twin-seed 7] [--twin-train-seeds S ...]
                       [--skip-synthetic] [--skip-cmapss]
                       [--quick] [--json]

Twin event figures (evaluation = the last 40 % of the run; the model never sees it):
an alarm is a 15-min window of a machine not in an unplanned down scoring >= 0.5;
precision = alarms followed by a failure of that machine (truth log) within the
horizon H (8 h); recall = failures whose first alarm in the H before them came >= 4 h
ahead; lead = failure time minus that first alarm.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bench import ml_twin
from ml import cmapss, models, synthetic
from ml.features import FeatureSpec

CMAPSS = Path(__file__).resolve().parent / "data" / "cmapss" / "train_FD001.txt"


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    return _paired_ms([fn], repeats)[0]


def _paired_ms(fns: list[Callable[[], object]], repeats: int, block: int = 10) -> list[float]:
    """Median ms of each function, in alternating blocks so both see the same machine load
    (blocks, not single calls, so one's thread pools winding down do not tax the other)."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(max(1, repeats // block)):
        for i, fn in enumerate(fns):
            fn()  # warm-up of this block
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                times[i].append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def plant_for(n: int, days: float, sample_s: int, seed: int) -> synthetic.SyntheticPlant:
    """About 15 % of equipment fail once at a random time after the first day."""
    rng = np.random.default_rng(seed)
    failing = rng.choice(n, size=max(2, n * 15 // 100), replace=False)
    faults = [synthetic.Fault(int(e), float(rng.uniform(30, days * 24 - 2)),
                              degrade_h=float(rng.uniform(18, 30))) for e in failing]
    return synthetic.generate(n, days=days, sample_s=sample_s, seed=seed, faults=faults,
                              lot_h=4.0)


def lead_time(model: models.Model, frame: pl.DataFrame, plant: synthetic.SyntheticPlant,
              threshold: float = 0.5) -> dict[str, Any]:
    """Event view on the hold-out: alarms = windows scoring >= threshold.

    Recall: failures with an alarm at least 4 h before them (within 24 h). Precision:
    alarm windows followed by a failure within the horizon. Lead: first alarm of the
    run-up to each failure.
    """
    s = models.score(model, frame).join(frame.select("equipment_id", "ts", "y_failure"),
                                         on=["equipment_id", "ts"])
    alarms = s.filter(pl.col("score") >= threshold)
    labelled = alarms.filter(pl.col("y_failure").is_not_null())
    precision = float(labelled["y_failure"].mean()) if labelled.height else None
    t0 = frame["ts"].min()
    fails = [(plant.equipment[f.equipment], plant.at(f.fail_h)) for f in plant.faults
             if plant.at(f.fail_h - 4) >= t0]
    leads = []
    for eq, at in fails:  # one lookup per failure, not per row
        pre = alarms.filter((pl.col("equipment_id") == eq) & (pl.col("ts") < at)
                            & (pl.col("ts") >= at - pl.duration(hours=24)))
        leads.append((at - pre["ts"].min()).total_seconds() / 3600 if pre.height else 0.0)
    hit = [x for x in leads if x >= 4.0]
    return {"failures": len(fails), "precision": precision,
            "recall_4h": len(hit) / len(fails) if fails else None,
            "median_lead_h": statistics.median(leads) if leads else None}


def bench_plant(n: int, days: float, sample_s: int, repeats: int, trees: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    plant = plant_for(n, days, sample_s, seed=11)
    gen_s = time.perf_counter() - t0
    spec = FeatureSpec()
    t0 = time.perf_counter()
    model = models.train_equipment("failure", plant.history, plant.events, spec=spec,
                                   n_estimators=trees, holdout=0.3)
    train_s = time.perf_counter() - t0
    as_of = plant.at(days * 24 - 6)
    frame = models.features_for(model, plant.history, plant.events, as_of=as_of)
    x = models.matrix(frame, model.features["main"])
    booster = models.threads_for(model.boosters["main"], frame.height)  # as score() runs it
    as_trained = model.boosters["main"].copy()
    as_trained.set_param({"nthread": 2})  # the training setting, xgboost's all-cores here
    raw_ms, score_ms = _paired_ms([lambda: booster.inplace_predict(x),
                                   lambda: models.score(model, frame)], repeats)
    # apart, not interleaved: its OpenMP workers spin on after each call and would tax
    # whichever measurement came next
    raw2_ms = _median_ms(lambda: as_trained.inplace_predict(x), repeats)
    # what the scoring job reads: the spec's whole lookback (windows + own-normal base)
    recent = plant.history.filter(pl.col("ts") > as_of - model.spec.lookback())
    e2e_ms = _median_ms(lambda: models.score_history(model, recent, plant.events, as_of=as_of),
                        max(3, repeats // 10))
    hold = models.holdout_frame(model, plant.history, plant.events)
    t0 = time.perf_counter()
    scrap = models.train_lot("scrap", plant.history, plant.quality, n_estimators=trees)
    scrap_s = time.perf_counter() - t0
    return {
        "equipment": n, "days": days, "sample_s": sample_s, "samples": plant.history.height,
        "generate_s": round(gen_s, 2), "train_s": round(train_s, 2),
        "train_rows": model.metrics["train_rows"], "features": len(model.features["main"]),
        "features_s": model.metrics["features_s"], "fit_s": model.metrics["fit_s"],
        "trees": trees, "scored_rows": frame.height,
        "score_ms": round(score_ms, 3), "raw_inplace_predict_ms": round(raw_ms, 3),
        "raw_inplace_predict_2_threads_ms": round(raw2_ms, 3),
        "score_vs_raw": round(score_ms / raw_ms, 2) if raw_ms else None,
        "score_from_history_ms": round(e2e_ms, 1),
        "holdout": {k: model.metrics.get(k) for k in ("auc", "precision", "recall",
                                                       "positives", "rows")},
        "events": lead_time(model, hold, plant),
        "scrap": {"lots": scrap.metrics["train_rows"] + scrap.metrics["rows"],
                  "holdout_auc": scrap.metrics["auc"], "train_s": round(scrap_s, 2)},
    }


def twin_events(model: models.Model, twin: ml_twin.TwinData, start: Any, horizon_h: float,
                threshold: float = 0.5, min_lead_h: float = 4.0) -> dict[str, Any]:
    """Alarm precision, recall with >= ``min_lead_h`` lead and lead times on the truth log."""
    feats = models.features_for(model, twin.history, twin.events, latest=False)
    feats = feats.filter(pl.col("ts") >= start)
    down = twin.events.unplanned().select("equipment_id", "start", "end")
    s = models.score(model, feats).join(down, on="equipment_id", how="left").with_columns(
        ((pl.col("ts") >= pl.col("start")) & (pl.col("ts") < pl.col("end")))
        .fill_null(False).alias("in_down")).group_by("equipment_id", "ts").agg(
        pl.col("score").first(), pl.col("in_down").any())
    alarms = s.filter((pl.col("score") >= threshold) & ~pl.col("in_down"))
    fails = twin.failures().select("equipment_id", pl.col("ts").alias("fail")).sort("fail")
    nxt = alarms.sort("ts").join_asof(fails, left_on="ts", right_on="fail", by="equipment_id",
                                      strategy="forward", check_sortedness=False)
    end = twin.end
    h = pl.duration(hours=horizon_h)
    hit = (pl.col("fail") - pl.col("ts")) <= h
    # an alarm whose horizon runs past the data is neither right nor wrong yet
    judged = nxt.filter(hit.fill_null(False) | (pl.col("ts") + h <= end))
    tp = int(judged.select(hit.fill_null(False).sum()).item())
    leads = []
    for eq, _kind, at in twin.failures().filter(
            pl.col("ts") >= start + pl.duration(hours=horizon_h)).rows():
        pre = alarms.filter((pl.col("equipment_id") == eq) & (pl.col("ts") < at)
                            & (pl.col("ts") >= at - timedelta(hours=horizon_h)))
        leads.append((at - pre["ts"].min()).total_seconds() / 3600 if pre.height else 0.0)
    ok = [x for x in leads if x >= min_lead_h]
    return {"failures": len(leads), "alarms": judged.height,
            "precision": round(tp / judged.height, 3) if judged.height else None,
            "recall_4h": round(len(ok) / len(leads), 3) if leads else None,
            "recall_any": round(sum(x > 0 for x in leads) / len(leads), 3) if leads else None,
            "median_lead_h": round(statistics.median(leads), 2) if leads else None,
            "leads_h": [round(x, 2) for x in leads]}


def bench_twin(days: float, seed: int, faults_per_day: float, trees: int,
               horizon_h: float = 8.0, train_frac: float = 0.6,
               train_seeds: Sequence[int] = ()) -> dict[str, Any]:
    """Train on the first ``train_frac`` of a twin run, judge the rest on its truth log.

    ``train_seeds``: whole twin runs of other seeds learnt from as earlier history."""
    t0 = time.perf_counter()
    twin = ml_twin.generate(days, seed=seed, faults_per_day=faults_per_day)
    extra = [ml_twin.generate(days, seed=s, faults_per_day=faults_per_day)
             for s in train_seeds if s != seed]
    gen_s = time.perf_counter() - t0
    cut = twin.at(days * 24 * train_frac)
    history, events = twin.until(cut)
    if extra:
        history, events = ml_twin.prepend(extra, history, events)
    t0 = time.perf_counter()
    model = models.train_equipment("failure", history, events, n_estimators=trees,
                                   horizon_h=horizon_h)
    train_s = time.perf_counter() - t0
    ev = twin_events(model, twin, cut, horizon_h)
    scrap = models.train_lot("scrap", twin.history, twin.quality, n_estimators=trees)
    q = twin.quality
    degr = twin.degradations()
    return {
        "days": days, "seed": seed, "faults_per_day": faults_per_day,
        "equipment": len(twin.equipment), "samples": twin.history.height,
        "generate_s": round(gen_s, 1), "train_s": round(train_s, 1),
        "faults": len([e for e in twin.truth if e["event"] == "fault_started"]),
        "degradations": len(degr), "failures": twin.failures().height,
        "train_failures": twin.failures().filter(pl.col("ts") <= cut).height
        + sum(x.failures().height for x in extra),
        "train_seeds": [s for s in train_seeds if s != seed],
        "evaluation_from_h": round(days * 24 * train_frac, 1),
        "holdout_auc": model.metrics.get("auc"), "events": ev,
        "scrap": {"lots": q.height if q is not None else 0,
                  "scrap_rate": round(float(q["scrap"].mean()), 3) if q is not None else None,
                  "holdout_auc": scrap.metrics.get("auc")},
    }


def bench_cmapss(seeds: int, trees: int, truncations: int) -> dict[str, Any]:
    runs = []
    for seed in range(seeds):
        rep = cmapss.run(CMAPSS, seed=seed, n_estimators=trees, truncations=truncations)
        ev = rep["evaluations"]
        runs.append({"seed": seed, "rmse": ev[0]["rmse"], "phm08": ev[0]["phm08_score"],
                     "rmse_full_last_cycle": ev[1]["rmse"], "train_s": rep["train_s"]})
    return {
        "protocol": "20 % of training engines held out by engine (seeded), each truncated at "
                    f"a random cycle ({truncations} draws averaged), last observed cycle, "
                    "true RUL uncapped", "trees": trees, "runs": runs,
        "median_rmse": statistics.median(r["rmse"] for r in runs),
        "median_phm08": statistics.median(r["phm08"] for r in runs),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench ml", description=__doc__.splitlines()[0])
    ap.add_argument("--equipment", type=int, default=1000)
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--sample-s", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--trees", type=int, default=150, help="failure model rounds")
    ap.add_argument("--seeds", type=int, default=3, help="C-MAPSS hold-out splits")
    ap.add_argument("--truncations", type=int, default=5)
    ap.add_argument("--twin-days", type=float, default=7.0, help="twin run (0: skip)")
    ap.add_argument("--twin-faults-per-day", type=float, default=4.0)
    ap.add_argument("--twin-seed", type=int, default=7)
    ap.add_argument("--twin-train-seeds", type=int, nargs="*", default=[],
                    help="whole twin runs of these seeds as extra, earlier training history")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--skip-cmapss", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="200 equipment, 1 C-MAPSS split, 3 twin days")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(list(argv) if argv is not None else None)
    if a.quick:
        a.equipment, a.seeds, a.repeats, a.twin_days = 200, 1, 20, 3.0
    if a.seeds < 1 or a.equipment < 2:
        ap.error("--seeds must be >= 1 and --equipment >= 2")
    out: dict[str, Any] = {}
    if not a.skip_synthetic:
        out["plant"] = bench_plant(a.equipment, a.days, a.sample_s, a.repeats, a.trees)
    if a.twin_days > 0:
        out["twin"] = bench_twin(a.twin_days, a.twin_seed, a.twin_faults_per_day, a.trees,
                                 train_seeds=a.twin_train_seeds)
    if not a.skip_cmapss:
        out["cmapss_fd001"] = bench_cmapss(a.seeds, 600, a.truncations)
    if a.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    if "plant" in out:
        _print_plant(out["plant"])
    if "twin" in out:
        _print_twin(out["twin"])
    if "cmapss_fd001" in out:
        _print_cmapss(out["cmapss_fd001"])
    return 0


def _print_plant(p: dict[str, Any]) -> None:
    print(f"synthetic plant (ml.synthetic): {p['equipment']} equipment, {p['days']:g} days "
          f"at {p['sample_s']} s ({p['samples']:,} samples)")
    print(f"  train failure model ({p['train_rows']:,} rows x {p['features']} features, "
          f"{p['trees']} trees): {p['train_s']:.2f} s (features {p['features_s']:.1f} s, "
          f"fit {p['fit_s']:.1f} s)")
    print(f"  score {p['scored_rows']} equipment: {p['score_ms']:.3f} ms median "
          f"vs raw inplace_predict {p['raw_inplace_predict_ms']:.3f} ms "
          f"(x{p['score_vs_raw']}; same booster on 2 threads "
          f"{p['raw_inplace_predict_2_threads_ms']:.3f} ms); from raw history incl. "
          f"features (the spec's lookback): {p['score_from_history_ms']:.1f} ms")
    ho, ev = p["holdout"], p["events"]
    print(f"  hold-out (last 30 %): AUC {ho['auc']}, row precision {ho['precision']}, "
          f"recall {ho['recall']}; failures {ev['failures']}: recall with >= 4 h lead "
          f"{ev['recall_4h']}, alarm precision {ev['precision']}, median lead "
          f"{ev['median_lead_h']} h")
    sc = p["scrap"]
    print(f"  scrap model: {sc['lots']} lots, hold-out AUC {sc['holdout_auc']}, "
          f"trained in {sc['train_s']:.1f} s")


def _print_twin(t: dict[str, Any]) -> None:
    ev, sc = t["events"], t["scrap"]
    print(f"plant twin (bench/ml_twin.py): {t['equipment']} equipment, {t['days']:g} days, "
          f"seed {t['seed']}, {t['faults_per_day']:g} random faults/day "
          f"({t['samples']:,} samples, generated in {t['generate_s']} s)")
    more = f", + whole runs of seeds {t['train_seeds']}" if t["train_seeds"] else ""
    print(f"  truth: {t['faults']} faults, {t['degradations']} degradations, "
          f"{t['failures']} failures ({t['train_failures']} in training{more}, "
          f"evaluation from {t['evaluation_from_h']} h)")
    print(f"  failure model: trained in {t['train_s']} s, window hold-out AUC "
          f"{t['holdout_auc']}")
    print(f"  events (truth log, H 8 h): {ev['failures']} failures, {ev['alarms']} alarms: "
          f"precision {ev['precision']}, recall with >= 4 h lead {ev['recall_4h']} "
          f"(any lead {ev['recall_any']}), median lead {ev['median_lead_h']} h "
          f"{ev['leads_h']}  (target P, R >= 0.9 at >= 4 h)")
    print(f"  scrap model: {sc['lots']} lots (scrap rate {sc['scrap_rate']}), hold-out AUC "
          f"{sc['holdout_auc']}")


def _print_cmapss(c: dict[str, Any]) -> None:
    print(f"C-MAPSS FD001 ({c['protocol']}):")
    for r in c["runs"]:
        print(f"  seed {r['seed']}: RMSE {r['rmse']:.2f}  PHM08 {r['phm08']:.1f}  "
              f"(full-trajectory last cycle RMSE {r['rmse_full_last_cycle']:.2f})")
    print(f"  median RMSE {c['median_rmse']:.2f}  median PHM08 {c['median_phm08']:.1f} "
          "(target RMSE <= 13)")


if __name__ == "__main__":
    sys.exit(main())
