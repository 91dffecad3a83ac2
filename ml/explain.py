"""Why a model scored what it did: top xgboost contributions in the plant's own words.

``pred_contribs`` gives each feature's additive share of one prediction (log-odds for
classifiers, the target's unit for regressors). We map each feature name back to its
signal, statistic and window, attach the feature's value, the model's 'normal' value
for it (training median; for ``dbase``/``zbase`` the recipe baseline is 0 by construction) and
a unit, so the engine can say "bearing_temp rising 2.1 °C/h over 6 h".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import xgboost as xgb

from ml.contract import UNITS
from ml.models import Model, matrix

STAT_WORDS = {
    "mean": "mean", "std": "variability", "slope": "trend", "rms": "RMS", "max": "peak",
    "dbase": "change vs recipe baseline", "zbase": "change vs recipe baseline in its spread",
    "zmax": "largest change of any signal vs its recipe baseline, in spreads",
    "dmean": "change of mean vs own normal", "drms": "change of RMS vs own normal",
    "dmax": "change of peak vs own normal", "n": "good samples", "min": "minimum",
}


@dataclass(frozen=True)
class FeatureName:
    signal: str  # a signal name, or a context name (recipe_id, hours_since_maint ...)
    stat: str | None
    window: str | None
    kind: str  # "signal" or "context"


def parse_feature(name: str) -> FeatureName:
    """'bearing_temp__slope_6h' -> (bearing_temp, slope, 6h); 'ctx__recipe_id' -> context."""
    head, _, tail = name.partition("__")
    if head == "ctx" or not tail:
        return FeatureName(tail or head, None, None, "context")
    if head in ("recipe_id", "batch_id", "shift_id", "operator_id"):  # joined table columns
        return FeatureName(head, tail, None, "context")
    stat, _, window = tail.partition("_")
    return FeatureName(head, stat, window or None, "signal")


def unit_of(f: FeatureName, units: dict[str, str]) -> str | None:
    if f.kind == "context":
        return {"hours_since_maint": "h", "cycles_since_maint": "cycles", "hour": "h",
                "duration_h": "h"}.get(f.signal)
    u = units.get(f.signal)
    if f.stat == "n":
        return "samples"
    if f.stat in ("zbase", "zmax"):
        return "spreads"
    if u is None:
        return None
    return f"{u}/h" if f.stat == "slope" else u


def explain(model: Model, frame: pl.DataFrame, top: int = 3, part: str = "main",
            units: dict[str, str] | None = None) -> list[list[dict[str, Any]]]:
    """Top contributions per row of a feature frame, largest magnitude first."""
    units = {**UNITS, **(units or {})}
    names = model.features[part]
    x = matrix(frame, names)
    contribs = model.boosters[part].predict(xgb.DMatrix(x, feature_names=names),
                                            pred_contribs=True)[:, :-1]  # last column: bias
    order = np.argsort(-np.abs(contribs), axis=1)[:, :top]
    out: list[list[dict[str, Any]]] = []
    for i in range(x.shape[0]):  # rows to explain are few (alerts), features are vectorised
        items = []
        for j in order[i]:
            c = float(contribs[i, j])
            if c == 0.0:
                continue
            items.append(_item(model, *_named(names, x[i], j), c, units))
        out.append(items)
    return out


def _named(names: list[str], row: np.ndarray, j: int) -> tuple[str, float]:
    """The feature to show for column ``j``: a cross-signal ``zmax`` is shown as the
    signal that set it (its ``zbase`` of the same window has that magnitude)."""
    f = parse_feature(names[j])
    if f.stat != "zmax":
        return names[j], row[j]
    cands = [k for k, n in enumerate(names) if n.endswith(f"__zbase_{f.window}")]
    if not cands:
        return names[j], row[j]
    vals = np.where(np.isfinite(row[cands]), np.abs(row[cands]), -1.0)
    if vals.max() < 0:
        return names[j], row[j]
    k = cands[int(np.argmax(vals))]
    return names[k], row[k]


def _item(model: Model, feature: str, value: float, contribution: float,
          units: dict[str, str]) -> dict[str, Any]:
    f = parse_feature(feature)
    val: Any = None if not np.isfinite(value) else float(value)
    base: Any = model.medians.get(feature)
    if f.stat in ("dbase", "zbase", "zmax"):
        base = 0.0
    cat = f.signal if f.kind == "context" else None
    if cat in model.categories and val is not None:  # a code -> the category's own name
        vocab = model.categories[cat]
        val = vocab[int(val)] if 0 <= int(val) < len(vocab) else None
        base = None
    item: dict[str, Any] = {
        ("context" if f.kind == "context" else "signal"): f.signal,
        "feature": f"{f.stat}_{f.window}" if f.window else (f.stat or f.signal),
        "value": _round(val), "baseline": _round(base), "unit": unit_of(f, units),
        "contribution": round(contribution, 4),
        "direction": "raises" if contribution > 0 else "lowers",
    }
    if f.stat:
        item["statistic"] = STAT_WORDS.get(f.stat, f.stat)
    if f.window:
        item["window"] = f.window
    return item


def _round(v: Any) -> Any:
    return round(v, 4) if isinstance(v, float) else v


def sentence(item: dict[str, Any]) -> str:
    """A plain-words rendering for logs and the CLI; the engine may phrase its own."""
    who = item.get("signal") or item.get("context")
    what = item.get("statistic", "")
    win = f" over {item['window']}" if item.get("window") else ""
    unit = f" {item['unit']}" if item.get("unit") else ""
    base = f" (normal {item['baseline']}{unit})" if item.get("baseline") is not None else ""
    return (f"{who} {what}{win} = {item['value']}{unit}{base} {item['direction']} the score "
            f"by {abs(item['contribution']):.3g}").replace("  ", " ")
