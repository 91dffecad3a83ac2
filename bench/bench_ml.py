"""ML: train time, scoring latency (1,000 equipment), failure lead time, scrap AUC, C-MAPSS RMSE.

Scoring latency is measured beside a raw xgboost ``inplace_predict`` on the same matrix
(median of repeats), so the figure is the pipeline's overhead over the bare model. The
plant is ml.synthetic's seeded run-to-failure generator (the twin is not wired yet); C-MAPSS
figures use the FD001 training file with whole engines held out (bench/data/cmapss).

    python -m bench ml [--equipment 1000] [--days 3] [--seeds 5] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

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
    booster = model.boosters["main"]
    raw_ms, score_ms = _paired_ms([lambda: booster.inplace_predict(x),
                                   lambda: models.score(model, frame)], repeats)
    recent = plant.history.filter(pl.col("ts") > as_of - pl.duration(hours=6))
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
        "score_vs_raw": round(score_ms / raw_ms, 2) if raw_ms else None,
        "score_from_history_ms": round(e2e_ms, 1),
        "holdout": {k: model.metrics.get(k) for k in ("auc", "precision", "recall",
                                                       "positives", "rows")},
        "events": lead_time(model, hold, plant),
        "scrap": {"lots": scrap.metrics["train_rows"] + scrap.metrics["rows"],
                  "holdout_auc": scrap.metrics["auc"], "train_s": round(scrap_s, 2)},
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
    ap.add_argument("--days", type=float, default=3.0)
    ap.add_argument("--sample-s", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--trees", type=int, default=150, help="failure model rounds")
    ap.add_argument("--seeds", type=int, default=5, help="C-MAPSS hold-out splits")
    ap.add_argument("--truncations", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="200 equipment, 1 C-MAPSS split")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(list(argv) if argv is not None else None)
    if a.quick:
        a.equipment, a.seeds, a.repeats = 200, 1, 20
    if a.seeds < 1 or a.equipment < 2:
        ap.error("--seeds must be >= 1 and --equipment >= 2")
    out = {"plant": bench_plant(a.equipment, a.days, a.sample_s, a.repeats, a.trees),
           "cmapss_fd001": bench_cmapss(a.seeds, 600, a.truncations)}
    if a.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    p, c = out["plant"], out["cmapss_fd001"]
    print(f"plant: {p['equipment']} equipment, {p['days']:g} days at {p['sample_s']} s "
          f"({p['samples']:,} samples)")
    print(f"  train failure model ({p['train_rows']:,} rows x {p['features']} features, "
          f"{p['trees']} trees): {p['train_s']:.2f} s (features {p['features_s']:.1f} s, "
          f"fit {p['fit_s']:.1f} s)")
    print(f"  score {p['scored_rows']} equipment: {p['score_ms']:.3f} ms median "
          f"vs raw inplace_predict {p['raw_inplace_predict_ms']:.3f} ms "
          f"(x{p['score_vs_raw']}); from raw history incl. features: "
          f"{p['score_from_history_ms']:.1f} ms")
    ho, ev = p["holdout"], p["events"]
    print(f"  hold-out (last 30 %): AUC {ho['auc']}, row precision {ho['precision']}, "
          f"recall {ho['recall']}; failures {ev['failures']}: recall with >= 4 h lead "
          f"{ev['recall_4h']}, alarm precision {ev['precision']}, median lead "
          f"{ev['median_lead_h']} h")
    sc = p["scrap"]
    print(f"  scrap model: {sc['lots']} lots, hold-out AUC {sc['holdout_auc']}, "
          f"trained in {sc['train_s']:.1f} s")
    print(f"C-MAPSS FD001 ({c['protocol']}):")
    for r in c["runs"]:
        print(f"  seed {r['seed']}: RMSE {r['rmse']:.2f}  PHM08 {r['phm08']:.1f}  "
              f"(full-trajectory last cycle RMSE {r['rmse_full_last_cycle']:.2f})")
    print(f"  median RMSE {c['median_rmse']:.2f}  median PHM08 {c['median_phm08']:.1f} "
          "(target RMSE <= 13)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
