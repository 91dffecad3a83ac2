"""NASA C-MAPSS run-to-failure data: the outside benchmark for the RUL pipeline.

Format (whitespace separated, no header): unit, cycle, 3 operational settings, 21 sensors.
Protocol (see bench/data/cmapss/README.md): target RUL capped at 125 cycles, near-constant
channels dropped, each test engine scored on its last observed cycle with RMSE and the
PHM08 score. Without an official test split we hold out whole engines (seeded) and truncate
each held-out engine at a random cycle, as the official test set does; scoring the full
held-out trajectories' last cycle (true RUL 0) is reported too but flatters any model.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import xgboost as xgb

from ml.features import slope_expr

COLUMNS = ["unit", "cycle", "setting1", "setting2", "setting3"] + [f"s{i}" for i in range(1, 22)]
DROPPED = ["setting1", "setting2", "setting3", "s1", "s5", "s6", "s10", "s16", "s18", "s19"]
SENSORS = [c for c in COLUMNS[2:] if c not in DROPPED]
RUL_CAP = 125
WINDOWS = (5, 10, 20, 30, 50)
SLOPE_WINDOWS = (10, 20, 40, 80)
BASE_CYCLES = 20
MIN_HISTORY = 31  # shortest trajectory in the official FD001 test set


class CmapssFormatError(ValueError):
    """The file is not in C-MAPSS format; the message names the file and the problem."""


def load(path: str | Path) -> pl.DataFrame:
    """Read a C-MAPSS train/test file into unit, cycle, settings and s1..s21."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        raise CmapssFormatError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CmapssFormatError(f"{p}: cannot be read ({e})") from None
    rows: list[list[float]] = []
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(COLUMNS):
            raise CmapssFormatError(
                f"{p}:{n}: expected {len(COLUMNS)} columns (unit, cycle, 3 settings, "
                f"21 sensors), found {len(parts)}"
            )
        try:
            rows.append([float(x) for x in parts])
        except ValueError:
            raise CmapssFormatError(
                f"{p}:{n}: non-numeric value in {line.strip()[:60]!r}") from None
    if not rows:
        raise CmapssFormatError(f"{p}: no data rows")
    arr = np.asarray(rows, dtype=np.float64)
    df = pl.DataFrame({c: arr[:, i] for i, c in enumerate(COLUMNS)})
    df = df.with_columns(pl.col("unit").cast(pl.Int32), pl.col("cycle").cast(pl.Int32))
    return df.sort("unit", "cycle")


def load_rul(path: str | Path) -> np.ndarray:
    """The official RUL_FDxxx.txt: one true RUL per test engine, in unit order."""
    p = Path(path)
    try:
        vals = [float(x) for x in p.read_text(encoding="utf-8").split()]
    except FileNotFoundError:
        raise CmapssFormatError(f"{p}: no such file") from None
    except ValueError:
        raise CmapssFormatError(f"{p}: expected one number per line") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CmapssFormatError(f"{p}: cannot be read ({e})") from None
    return np.asarray(vals, dtype=np.float64)


def with_rul(df: pl.DataFrame, cap: float = RUL_CAP) -> pl.DataFrame:
    """True RUL = last cycle of the unit - cycle, capped (the piecewise-linear target)."""
    rul = pl.col("cycle").max().over("unit") - pl.col("cycle")
    return df.with_columns(rul.alias("rul_true"), pl.min_horizontal(rul, pl.lit(cap)).alias("rul"))


def features(df: pl.DataFrame) -> pl.DataFrame:
    """Per engine, over cycles: rolling means, std and least-squares slopes of each sensor.

    Windows only look back, so a truncated trajectory gets exactly the features its
    prefix had in training: one function serves training and scoring.
    """
    exprs: list[pl.Expr] = [pl.col("cycle").cast(pl.Float64).alias("f_cycle")]
    t = pl.col("cycle").cast(pl.Float64)
    for s in SENSORS:
        x = pl.col(s)
        exprs.append(x.alias(f"f_{s}"))
        for w in WINDOWS:
            exprs.append(x.rolling_mean(w, min_samples=1).over("unit").alias(f"f_{s}_mean{w}"))
        exprs.append(x.rolling_std(10, min_samples=2).over("unit").alias(f"f_{s}_std10"))
        for w in SLOPE_WINDOWS:
            exprs.append(slope_expr(x, t, w, "unit").alias(f"f_{s}_slope{w}"))
        exprs.append((x.cum_sum().over("unit") / t.cum_count().over("unit").cast(pl.Float64))
                     .alias(f"f_{s}_expmean"))
        # Change against the engine's own early life (first BASE_CYCLES, causal): engines
        # start with different wear, as machines start with different offsets.
        early = pl.when(t <= BASE_CYCLES).then(x).otherwise(0.0).cum_sum().over("unit")
        base = early / pl.min_horizontal(t, pl.lit(float(BASE_CYCLES)))
        exprs.append((x.rolling_mean(10, min_samples=1).over("unit") - base)
                     .alias(f"f_{s}_dbase"))
    return df.with_columns(exprs)


def feature_names(df: pl.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith("f_")]


def holdout_units(units: list[int], frac: float = 0.2, seed: int = 0) -> list[int]:
    """A seeded set of whole engines to hold out (never rows of an engine on both sides)."""
    rng = np.random.default_rng(seed)
    n = max(1, round(len(units) * frac))
    return sorted(int(u) for u in rng.choice(np.asarray(sorted(units)), size=n, replace=False))


def truncate(df: pl.DataFrame, seed: int = 0, max_rul: int = 145) -> pl.DataFrame:
    """Cut each engine at a random cycle (>= MIN_HISTORY observed) like the official test set.

    Returns the truncated rows plus ``rul_true`` (uncapped) of the last kept cycle per unit.
    """
    rng = np.random.default_rng(seed)
    last = df.group_by("unit").agg(pl.col("cycle").max().alias("last")).sort("unit")
    cuts = []
    for u, n in last.iter_rows():  # one draw per engine, not per row
        hi = min(max_rul, n - MIN_HISTORY)
        rul = int(rng.integers(1, hi + 1)) if hi >= 1 else 0
        cuts.append((u, n - rul))
    cut = pl.DataFrame(cuts, schema={"unit": pl.Int32, "cut": pl.Int32}, orient="row")
    return df.join(cut, on="unit").filter(pl.col("cycle") <= pl.col("cut")).drop("cut")


def phm08(pred: np.ndarray, true: np.ndarray) -> float:
    """PHM08 score: late predictions (d>0) cost more than early ones."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    d = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(math.sqrt(np.mean(d * d)))


DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "reg:squarederror",
    "max_depth": 4,
    "learning_rate": 0.03,
    "subsample": 0.8,
    "colsample_bytree": 0.5,
    "min_child_weight": 5,
    "tree_method": "hist",
    "nthread": 2,
    "seed": 0,
}


@dataclass
class RulModel:
    booster: xgb.Booster
    features: list[str]
    train_s: float = 0.0

    def predict_last(self, df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Units and predicted RUL on each unit's last observed cycle."""
        f = features(df)
        last = f.filter(pl.col("cycle") == pl.col("cycle").max().over("unit")).sort("unit")
        x = last.select(self.features).to_numpy()
        pred = self.booster.inplace_predict(x)
        return last["unit"].to_numpy(), np.clip(pred, 0.0, RUL_CAP)


def train(df: pl.DataFrame, n_estimators: int = 600, params: dict[str, Any] | None = None,
          seed: int = 0) -> RulModel:
    """Fit the RUL regressor on every cycle of every training engine (capped target)."""
    t0 = time.perf_counter()
    f = features(with_rul(df))
    names = feature_names(f)
    p = {**DEFAULT_PARAMS, **(params or {}), "seed": seed}
    dm = xgb.DMatrix(f.select(names).to_numpy(), label=f["rul"].to_numpy(), feature_names=names)
    booster = xgb.train(p, dm, num_boost_round=n_estimators)
    return RulModel(booster, names, time.perf_counter() - t0)


@dataclass
class Evaluation:
    protocol: str
    engines: int
    rmse: float
    score: float
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "engines": self.engines, "rmse": round(self.rmse, 3),
                "phm08_score": round(self.score, 2), **self.details}


def evaluate_last(model: RulModel, df: pl.DataFrame, true: np.ndarray | None,
                  protocol: str) -> Evaluation:
    """Score each engine's last observed cycle; ``true`` None means RUL from the data."""
    units, pred = model.predict_last(df)
    if true is None:
        t = with_rul(df).filter(pl.col("cycle") == pl.col("cycle").max().over("unit"))
        true = t.sort("unit")["rul_true"].to_numpy().astype(np.float64)
    if len(true) != len(units):
        raise CmapssFormatError(
            f"RUL file has {len(true)} values but the test file has {len(units)} engines"
        )
    return Evaluation(protocol, len(units), rmse(pred, true), phm08(pred, true))


def run(train_path: str | Path, test_path: str | Path | None = None,
        rul_path: str | Path | None = None, *, holdout: float = 0.2, seed: int = 0,
        n_estimators: int = 600, truncations: int = 1) -> dict[str, Any]:
    """The whole `loopline ml cmapss` protocol; returns a JSON-ready report."""
    data = load(train_path)
    out: dict[str, Any] = {"train_file": str(train_path), "rul_cap": RUL_CAP,
                           "sensors": SENSORS, "seed": seed}
    if test_path is not None:
        if rul_path is None:
            raise CmapssFormatError("--test needs --rul (the true RUL of each test engine)")
        test, true = load(test_path), load_rul(rul_path)
        model = train(data, n_estimators, seed=seed)
        ev = evaluate_last(model, test, true, "official test file, last observed cycle")
        out.update(train_engines=int(data["unit"].n_unique()), evaluations=[ev.as_dict()])
    else:
        units = data["unit"].unique().to_list()
        if len(units) < 2:
            raise CmapssFormatError(f"{train_path}: need at least 2 engines to hold some out")
        held = holdout_units(units, holdout, seed)
        tr = data.filter(~pl.col("unit").is_in(held))
        te = data.filter(pl.col("unit").is_in(held))
        model = train(tr, n_estimators, seed=seed)
        evs = []
        rm, sc = [], []
        for k in range(truncations):
            cut = truncate(te, seed=seed * 1000 + k)
            true = with_rul(te).join(
                cut.group_by("unit").agg(pl.col("cycle").max().alias("cycle")),
                on=["unit", "cycle"],
            ).sort("unit")["rul_true"].to_numpy().astype(np.float64)
            ev = evaluate_last(model, cut, true, "held-out engines truncated at random cycle")
            rm.append(ev.rmse)
            sc.append(ev.score)
        trunc = Evaluation("held-out engines truncated at a random cycle, last observed cycle",
                           len(held), float(np.mean(rm)), float(np.mean(sc)),
                           {"truncations": truncations, "primary": True})
        evs.append(trunc.as_dict())
        full = evaluate_last(model, te, None, "held-out engines, full trajectory, last cycle "
                             "(true RUL 0, flattering)")
        evs.append(full.as_dict())
        out.update(train_engines=len(units) - len(held), holdout_engines=held, evaluations=evs)
    out.update(n_estimators=n_estimators, train_s=round(model.train_s, 3),
               features=len(model.features))
    return out
