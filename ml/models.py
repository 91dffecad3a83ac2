"""xgboost models behind the closed loop: failure, RUL, scrap, quality and anomaly.

Each ``train_*`` takes frames in the history contract, builds features with ml.features
(the same call scoring makes), labels them from events or quality results, holds out
the most recent share of time and reports metrics on it. Scoring is one
``inplace_predict`` over every equipment (or lot) at once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl
import xgboost as xgb

from ml import contract, drift
from ml.contract import Events
from ml.features import (
    LEVEL_STATS,
    LOT_CONTEXT,
    FeatureSpec,
    equipment_features,
    lot_features,
    recipe_baselines,
    signal_features,
)

KINDS = ("failure", "rul", "scrap", "quality", "anomaly")
# The metric a challenger must beat the champion on, and which way is better.
PRIMARY: dict[str, tuple[str, str]] = {
    "failure": ("auc", "max"), "scrap": ("auc", "max"), "rul": ("rmse", "min"),
    "quality": ("rmse", "min"), "anomaly": ("rmse_z", "min"),
}
EQUIPMENT_CATEGORIES = ("recipe_id",)
# Clocks grow by design; their distribution 'drifting' says nothing about the plant.
CLOCKS = ("ctx__hours_since_maint", "ctx__cycles_since_maint", "ctx__hour")
LOT_CATEGORIES = ("recipe_id", "batch_id", "shift_id", "operator_id")


class TrainingError(ValueError):
    """Not enough labelled data to train; the message says what is missing."""


@dataclass
class Model:
    """A trained model with everything scoring and explaining need."""

    name: str
    kind: str
    boosters: dict[str, xgb.Booster]
    features: dict[str, list[str]]
    categories: dict[str, list[str]] = field(default_factory=dict)
    spec: FeatureSpec | None = None
    baselines: pl.DataFrame | None = None
    params: dict[str, Any] = field(default_factory=dict)
    train_window: tuple[datetime, datetime] | None = None
    holdout_start: datetime | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)  # drift reference per feature
    medians: dict[str, float] = field(default_factory=dict)  # 'normal' value per feature
    resid_scale: dict[str, float] = field(default_factory=dict)  # anomaly: residual std
    train_s: float = 0.0

    @property
    def grain(self) -> str:
        return "lot" if self.kind in ("scrap", "quality") else "equipment"


# ------------------------------------------------------------------ shared helpers


def encode(df: pl.DataFrame, cats: dict[str, list[str]]) -> pl.DataFrame:
    """Categorical context -> ``ctx__<col>`` codes from a saved vocabulary (unknown: null)."""
    out = []
    for col, vocab in cats.items():
        m = {v: float(i) for i, v in enumerate(vocab)}
        src = pl.col(col) if col in df.columns else pl.lit(None, pl.String)
        out.append(src.replace_strict(m, default=None, return_dtype=pl.Float64)
                   .alias(f"ctx__{col}"))
    return df.with_columns(out) if out else df


def vocabulary(df: pl.DataFrame, cols: tuple[str, ...]) -> dict[str, list[str]]:
    return {c: sorted(df[c].drop_nulls().unique().to_list()) for c in cols if c in df.columns}


def matrix(df: pl.DataFrame, names: list[str]) -> np.ndarray:
    """The model input in the model's column order; absent columns become missing (NaN).

    Filled column by column into one row-major array (xgboost would otherwise copy a
    column-major one on every predict); only columns that are not Float64 already are
    cast, which is most of the cost of a ``select(cast ...)`` on a scoring-sized frame.
    """
    schema = df.schema
    out = np.empty((df.height, len(names)), dtype=np.float64)
    for j, c in enumerate(names):
        dtype = schema.get(c)
        if dtype is None:
            out[:, j] = np.nan
            continue
        s = df.get_column(c)
        if dtype != pl.Float64:
            s = s.cast(pl.Float64)
        out[:, j] = s.to_numpy()  # nulls -> NaN, xgboost's missing value
    return out


def time_split(df: pl.DataFrame, col: str, frac: float) -> tuple[pl.DataFrame, pl.DataFrame,
                                                                  datetime]:
    """Older rows train, the newest ``frac`` of the time span is the hold-out."""
    lo, hi = df[col].min(), df[col].max()
    cut = lo + (hi - lo) * (1.0 - frac)  # type: ignore[operator]
    return df.filter(pl.col(col) < cut), df.filter(pl.col(col) >= cut), cut  # type: ignore[return-value]


def auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """Rank AUC (ties averaged); None when only one class is present."""
    y = np.asarray(y).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return None
    r = pl.Series(np.asarray(p, dtype=np.float64)).rank("average").to_numpy()
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def classifier_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    y = np.asarray(y).astype(bool)
    pe = np.clip(p, 1e-7, 1 - 1e-7)
    pred = p >= threshold
    tp = int((pred & y).sum())
    return {
        "auc": auc(y, p), "logloss": float(-np.mean(y * np.log(pe) + (~y) * np.log(1 - pe))),
        "precision": tp / int(pred.sum()) if pred.any() else None,
        "recall": tp / int(y.sum()) if y.any() else None,
        "positives": int(y.sum()), "rows": len(y),
    }


def regressor_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    d = np.asarray(p, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    return {"rmse": float(math.sqrt(np.mean(d * d))), "mae": float(np.mean(np.abs(d))),
            "rows": len(d)}


def _params(kind: str, seed: int, extra: dict[str, Any] | None) -> dict[str, Any]:
    p: dict[str, Any] = {"max_depth": 4, "learning_rate": 0.1, "subsample": 0.9,
                         "colsample_bytree": 0.8, "min_child_weight": 2, "tree_method": "hist",
                         "nthread": 2, "seed": seed}
    p["objective"] = "binary:logistic" if kind in ("failure", "scrap") else "reg:squarederror"
    return {**p, **(extra or {})}


def _fit(x: np.ndarray, y: np.ndarray, names: list[str], params: dict[str, Any],
         rounds: int) -> xgb.Booster:
    return xgb.train(params, xgb.DMatrix(x, label=y, feature_names=names), rounds)


def _medians(df: pl.DataFrame, names: list[str]) -> dict[str, float]:
    row = df.select([pl.col(c).cast(pl.Float64).median() for c in names]).row(0)
    return {c: float(v) for c, v in zip(names, row, strict=True) if v is not None}


# ------------------------------------------------------------------ equipment models


def label_failures(feats: pl.DataFrame, events: Events, horizon_h: float,
                   rul_cap_h: float) -> pl.DataFrame:
    """Label each equipment window: failure within H, hours to the next unplanned down.

    Windows inside a down interval are dropped (the machine is not running); windows
    whose future is shorter than the horizon and show no failure are censored, not
    counted as healthy. A failure prevented by an effective action counts as a failure
    at the action's time. RUL is capped like C-MAPSS; unknown beyond the data -> null.
    """
    ev = events.conformed()
    downs = ev.unplanned().select("equipment_id", "start", "end").sort("start")
    end_of_data = feats["ts"].max()
    f = feats.sort("ts")
    fails = ev.failures().select("equipment_id", pl.col("ts").alias("next_fail"))
    nxt = f.join_asof(fails.sort("next_fail"),
                      left_on="ts", right_on="next_fail", by="equipment_id",
                      strategy="forward", allow_exact_matches=False, check_sortedness=False)
    prev = nxt.join_asof(downs.select("equipment_id", pl.col("start").alias("ps"),
                                      pl.col("end").alias("pe")),
                         left_on="ts", right_on="ps", by="equipment_id", strategy="backward",
                         check_sortedness=False)
    ttf = (pl.col("next_fail") - pl.col("ts")).dt.total_seconds() / 3600.0
    left = (pl.lit(end_of_data) - pl.col("ts")).dt.total_seconds() / 3600.0
    out = prev.with_columns(ttf.alias("ttf_h"), left.alias("left_h")).with_columns(
        pl.when(pl.col("ttf_h") <= horizon_h).then(1.0)
        .when(pl.col("left_h") >= horizon_h).then(0.0).otherwise(None).alias("y_failure"),
        pl.when(pl.col("ttf_h").is_not_null()).then(pl.min_horizontal("ttf_h", pl.lit(rul_cap_h)))
        .when(pl.col("left_h") >= rul_cap_h).then(rul_cap_h).otherwise(None).alias("y_rul"),
        (pl.col("pe").is_not_null() & (pl.col("ts") < pl.col("pe"))).alias("in_down"),
    )
    return out.filter(~pl.col("in_down")).drop("ps", "pe", "in_down", "left_h").sort(
        "equipment_id", "ts")


def equipment_inputs(feats: pl.DataFrame, kind: str = "anomaly") -> list[str]:
    """Model inputs of an equipment model. Failure and RUL see change, not identity.

    Absolute levels (mean, RMS, max of a signal) tell the model which machine it is
    looking at; with a handful of failures to learn from it then learns 'this machine
    fails' instead of 'this machine has changed'. Those models get the same statistics
    relative to the machine's own normal (d*) instead; anomaly keeps the levels.
    """
    names = sorted(signal_features(feats)) + [f"ctx__{c}" for c in EQUIPMENT_CATEGORIES]
    if kind in ("failure", "rul"):
        level = tuple(f"__{st}_" for st in LEVEL_STATS)
        names = [c for c in names if not any(t in c for t in level)]
    return list(dict.fromkeys(names))


def train_equipment(kind: str, history: pl.DataFrame, events: Events, *, name: str | None = None,
                    spec: FeatureSpec | None = None, horizon_h: float = 8.0,
                    rul_cap_h: float = 72.0, holdout: float = 0.25, n_estimators: int = 150,
                    seed: int = 0, params: dict[str, Any] | None = None,
                    baseline_frac: float = 0.3) -> Model:
    """Failure-within-horizon classifier or RUL regressor, across all equipment."""
    if kind not in ("failure", "rul", "anomaly"):
        raise ValueError(f"not an equipment model: {kind}")
    t0 = time.perf_counter()
    spec = spec or FeatureSpec()
    history = contract.history(history)
    lo, hi = history["ts"].min(), history["ts"].max()
    if lo is None:
        raise TrainingError("no history samples: nothing to learn from")
    base_end = lo + (hi - lo) * baseline_frac  # type: ignore[operator]
    baselines = recipe_baselines(history.filter(pl.col("ts") <= base_end), spec.signals,
                                 events)
    feats = equipment_features(history, events, spec, baselines)
    t_feat = time.perf_counter() - t0
    cats = vocabulary(feats, EQUIPMENT_CATEGORIES)
    feats = encode(feats, cats)
    if kind == "anomaly":
        return _train_anomaly(feats, spec, baselines, cats, name or "anomaly", holdout,
                              n_estimators, seed, params, t0, (lo, hi))  # type: ignore[arg-type]
    lab = label_failures(feats, events, horizon_h, rul_cap_h)
    target = "y_failure" if kind == "failure" else "y_rul"
    lab = lab.filter(pl.col(target).is_not_null())
    if kind == "failure" and lab.filter(pl.col(target) == 1.0).height == 0:
        raise TrainingError("no unplanned downs in the history: no failure labels")
    names = equipment_inputs(feats, kind)
    tr, ho, cut = time_split(lab, "ts", holdout)
    # No class weights: an unweighted logistic score stays a probability, so 0.5 means
    # 'more likely than not to fail within H'. Weighting the rare positives (it was
    # neg/pos, up to 50) pushed every degrading machine over 0.5 hours before its
    # horizon: on the twin 17 % of alarms came too early against 9 % unweighted, at
    # the same recall. ``params={"scale_pos_weight": ...}`` still sets one.
    p = _params(kind, seed, params)
    t1 = time.perf_counter()
    booster = _fit(matrix(tr, names), tr[target].to_numpy(), names, p, n_estimators)
    t_fit = time.perf_counter() - t1
    model = Model(name or kind, kind, {"main": booster}, {"main": names}, cats, spec, baselines,
                  {"horizon_h": horizon_h, "rul_cap_h": rul_cap_h, "n_estimators": n_estimators,
                   "seed": seed}, (lo, hi), cut)  # type: ignore[arg-type]
    model.metrics = evaluate(model, ho)
    model.metrics.update(train_rows=tr.height, features_s=round(t_feat, 3),
                         fit_s=round(t_fit, 3))
    model.reference = drift.reference(tr, [c for c in names if c not in CLOCKS])
    model.medians = _medians(tr, names)
    model.train_s = time.perf_counter() - t0
    return model


def _anomaly_inputs(names: list[str], sig: str) -> list[str]:
    return [c for c in names if not c.startswith(f"{sig}__")]


def _train_anomaly(feats: pl.DataFrame, spec: FeatureSpec, baselines: pl.DataFrame,
                   cats: dict[str, list[str]], name: str, holdout: float, n_estimators: int,
                   seed: int, params: dict[str, Any] | None, t0: float,
                   window: tuple[datetime, datetime]) -> Model:
    """Per signal: predict its short-window mean from context and the other signals."""
    w = spec.windows[0]
    names = [c for c in equipment_inputs(feats) if c.endswith(f"_{w}") or c.startswith("ctx__")]
    # Context that says what the machine is doing, not how worn it is: the maintenance
    # clock would let the model learn wear as 'normal'.
    names = [c for c in names if "__mean_" in c or c in ("ctx__recipe_id", "ctx__hour")]
    ok = feats.filter(~pl.col("low_data"))
    tr, ho, cut = time_split(ok, "ts", holdout)
    boosters, fnames, scale = {}, {}, {}
    for sig in spec.signals:
        target = f"{sig}__mean_{w}"
        if target not in feats.columns:
            continue
        trs = tr.filter(pl.col(target).is_not_null())
        if trs.height < 20:
            continue
        inp = _anomaly_inputs(names, sig)
        b = _fit(matrix(trs, inp), trs[target].to_numpy(), inp, _params("anomaly", seed, params),
                 n_estimators)
        # The residual scale comes from the hold-out: in-sample residuals are overfit-small.
        hos = ho.filter(pl.col(target).is_not_null())
        ref = hos if hos.height >= 20 else trs
        resid = ref[target].to_numpy() - b.inplace_predict(matrix(ref, inp))
        boosters[sig], fnames[sig] = b, inp
        scale[sig] = float(max(np.std(resid), 1e-6))
    if not boosters:
        raise TrainingError("not enough good windows to learn any signal's normal behaviour")
    model = Model(name, "anomaly", boosters, fnames, cats, spec, baselines,
                  {"n_estimators": n_estimators, "seed": seed, "target_window": w}, window, cut)
    model.resid_scale = scale
    model.metrics = evaluate(model, ho)
    model.metrics["train_rows"] = tr.height
    allnames = sorted({c for v in fnames.values() for c in v})
    model.reference = drift.reference(tr, [c for c in allnames if c not in CLOCKS])
    model.medians = _medians(tr, allnames)
    model.train_s = time.perf_counter() - t0
    return model


# ------------------------------------------------------------------ lot models


def label_lots(lots: pl.DataFrame, quality: pl.DataFrame | None,
               history: pl.DataFrame | None = None) -> pl.DataFrame:
    """Join each lot's outcome: scrap flag and the key quality characteristic.

    Without a quality-results frame the lot's mean good quality_value samples stand in
    for the characteristic (no scrap label then).
    """
    if quality is not None and quality.height:
        q = contract.conform(quality, contract.QUALITY_SCHEMA, "quality").group_by("lot_id").agg(
            pl.col("scrap").any().cast(pl.Float64).alias("y_scrap"),
            pl.col("value").mean().alias("y_quality"))
        return lots.join(q, on="lot_id", how="left")
    if history is None:
        raise TrainingError("no quality results and no quality_value samples to learn from")
    qv = (contract.history(history).filter(
        pl.col("tag_id").str.ends_with(".quality_value") & (pl.col("quality") == contract.GOOD))
          .group_by("lot_id").agg(pl.col("value").mean().alias("y_quality")))
    return lots.join(qv, on="lot_id", how="left").with_columns(
        pl.lit(None, pl.Float64).alias("y_scrap"))


def lot_inputs(lots: pl.DataFrame) -> list[str]:
    skip = {"lot_id", "order_id", "start", "end", "low_data", *LOT_CONTEXT}
    num = [c for c in lots.columns if c not in skip and not c.startswith("y_")
           and "__" in c and lots.schema[c].is_numeric()]
    return list(dict.fromkeys(sorted(num) + [f"ctx__{c}" for c in LOT_CATEGORIES]))


def train_lot(kind: str, history: pl.DataFrame, quality: pl.DataFrame | None = None, *,
              name: str | None = None, tables: dict[str, pl.DataFrame] | None = None,
              holdout: float = 0.25, n_estimators: int = 150, seed: int = 0,
              params: dict[str, Any] | None = None) -> Model:
    """Scrap probability or quality characteristic per lot from its process context."""
    if kind not in ("scrap", "quality"):
        raise ValueError(f"not a lot model: {kind}")
    t0 = time.perf_counter()
    history = contract.history(history)
    if history.height == 0:
        raise TrainingError("no history samples: nothing to learn from")
    lots = lot_features(history, tables=tables)
    cats = vocabulary(lots, LOT_CATEGORIES)
    lots = encode(label_lots(lots, quality, history), cats)
    target = "y_scrap" if kind == "scrap" else "y_quality"
    lab = lots.filter(pl.col(target).is_not_null() & ~pl.col("low_data")).sort("start", "lot_id")
    if lab.height < 10:
        raise TrainingError(f"only {lab.height} lots with a {kind} result: need at least 10")
    names = lot_inputs(lots)
    tr, ho, cut = time_split(lab, "start", holdout)
    p = _params(kind, seed, params)
    booster = _fit(matrix(tr, names), tr[target].to_numpy(), names, p, n_estimators)
    model = Model(name or kind, kind, {"main": booster}, {"main": names}, cats, None, None,
                  {"n_estimators": n_estimators, "seed": seed},
                  (history["ts"].min(), history["ts"].max()), cut)  # type: ignore[arg-type]
    model.params["tables"] = sorted((tables or {}).keys())
    model.metrics = evaluate(model, ho)
    model.metrics["train_rows"] = tr.height
    model.reference = drift.reference(tr, [c for c in names if c not in CLOCKS])
    model.medians = _medians(tr, names)
    model.train_s = time.perf_counter() - t0
    return model


# ------------------------------------------------------------------ scoring


# Below this many rows one thread predicts faster than two on a busy 2-core machine:
# OpenMP's fork/join then waits for a core the plant's other threads hold (measured:
# 1,000 rows x 150 trees, 2 threads 1.5 ms idle but 5 ms median / 44 ms worst under
# load; 1 thread 1.8 ms idle, 2.0 ms under load).
SMALL_BATCH = 20_000


def threads_for(booster: xgb.Booster, rows: int) -> xgb.Booster:
    """Set the booster's prediction threads for a batch of ``rows`` (only when it changes)."""
    n = 1 if rows < SMALL_BATCH else 0  # 0: xgboost's default, all cores
    if getattr(booster, "_loopline_nthread", None) != n:
        booster.set_param({"nthread": n})
        booster._loopline_nthread = n  # type: ignore[attr-defined]
    return booster


def predict(model: Model, frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """Raw predictions per booster for an already-built feature frame: one call each."""
    return {k: threads_for(b, frame.height).inplace_predict(matrix(frame, model.features[k]))
            for k, b in model.boosters.items()}


def evaluate(model: Model, frame: pl.DataFrame) -> dict[str, Any]:
    """Metrics on a labelled feature frame: the same hold-out judges champion and challenger."""
    if frame.height == 0:
        return {"rows": 0}
    if model.kind == "anomaly":
        out: dict[str, Any] = {}
        zs = []
        w = model.params.get("target_window")
        for sig, pred in predict(model, frame).items():
            y = frame[f"{sig}__mean_{w}"].to_numpy().astype(np.float64)
            ok = np.isfinite(y)
            if ok.any():
                z = (y[ok] - pred[ok]) / model.resid_scale[sig]
                out[f"rmse_{sig}"] = float(math.sqrt(np.mean((y[ok] - pred[ok]) ** 2)))
                zs.append(z)
        allz = np.concatenate(zs) if zs else np.zeros(0)
        out["rmse_z"] = float(math.sqrt(np.mean(allz ** 2))) if allz.size else None
        out["rows"] = frame.height
        return out
    target = {"failure": "y_failure", "rul": "y_rul", "scrap": "y_scrap",
              "quality": "y_quality"}[model.kind]
    if target not in frame.columns:
        raise ValueError(f"frame has no {target} labels")
    f = frame.filter(pl.col(target).is_not_null())
    if f.height == 0:
        return {"rows": 0}
    p = predict(model, f)["main"]
    y = f[target].to_numpy()
    return classifier_metrics(y, p) if model.kind in ("failure", "scrap") else \
        regressor_metrics(y, p)


def features_for(model: Model, history: pl.DataFrame, events: Events | None = None, *,
                 as_of: datetime | None = None, latest: bool = True,
                 quality: pl.DataFrame | None = None,
                 tables: dict[str, pl.DataFrame] | None = None) -> pl.DataFrame:
    """The model's feature frame from raw history: the one path for scoring and hold-outs."""
    if model.grain == "lot":
        lots = lot_features(contract.history(history), tables=tables)
        if quality is not None:
            lots = label_lots(lots, quality)
        return encode(lots, model.categories)
    feats = equipment_features(history, events, model.spec, model.baselines, as_of=as_of,
                               latest=latest)
    return encode(feats, model.categories)


def score(model: Model, frame: pl.DataFrame) -> pl.DataFrame:
    """Scores for every row of a feature frame (all equipment or lots in one call)."""
    preds = predict(model, frame)
    keys = ["lot_id"] if model.grain == "lot" else ["equipment_id", "ts"]
    if model.grain == "lot":  # the lot's context goes with its score (a hold needs it)
        keys += [c for c in ("order_id", *LOT_CONTEXT) if c in frame.columns]
    out = frame.select(*keys, "low_data")
    if model.kind == "anomaly":
        w = model.params["target_window"]
        cols = []
        for sig, p in preds.items():
            y = frame[f"{sig}__mean_{w}"].cast(pl.Float64)
            cols.append(((y - pl.Series(p).cast(pl.Float64)) / model.resid_scale[sig])
                        .alias(f"anomaly__{sig}"))
        out = out.with_columns(cols)
        zc = [c.name for c in cols]
        return out.with_columns(pl.max_horizontal([pl.col(c).abs() for c in zc]).alias("score"))
    p = preds["main"]
    if model.kind == "rul":
        p = np.clip(p, 0.0, model.params.get("rul_cap_h", np.inf))
    return pl.DataFrame([*out.get_columns(), pl.Series("score", p.astype(np.float64))])


def score_history(model: Model, history: pl.DataFrame, events: Events | None = None, *,
                  as_of: datetime | None = None) -> pl.DataFrame:
    """Score the latest window of every equipment (or every lot) in a history frame."""
    return score(model, features_for(model, history, events, as_of=as_of))


def holdout_frame(model: Model, history: pl.DataFrame, events: Events | None,
                  quality: pl.DataFrame | None = None) -> pl.DataFrame:
    """Labelled feature rows of ``model``'s hold-out period, built with its own pipeline."""
    if model.holdout_start is None:
        raise ValueError("model has no hold-out period")
    if model.grain == "lot":
        f = features_for(model, history, quality=quality)
        if "y_scrap" not in f.columns:
            f = label_lots(f, quality, history)
        return f.filter(pl.col("start") >= model.holdout_start)
    f = features_for(model, history, events, latest=False)
    if model.kind != "anomaly":
        f = label_failures(f, events or Events.empty(), model.params["horizon_h"],
                           model.params["rul_cap_h"])
    else:
        f = f.filter(~pl.col("low_data"))
    return f.filter(pl.col("ts") >= model.holdout_start)


def train(kind: str, history: pl.DataFrame, events: Events | None = None,
          quality: pl.DataFrame | None = None, **kw: Any) -> Model:
    """Train any kind by name; top-level so a process pool can run it."""
    if kind in ("scrap", "quality"):
        return train_lot(kind, history, quality, **kw)
    return train_equipment(kind, history, events or Events.empty(), **kw)
