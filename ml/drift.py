"""Population stability index per feature: has the plant moved away from the training data?

A model stores, per input feature, decile edges and the training share in each bin; a
recent feature frame is binned on the same edges. PSI above the threshold (0.2 by
default: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major shift) flags drift and so a
retrain recommendation. Missing values are their own bin, so a signal going Bad shows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

DEFAULT_THRESHOLD = 0.2
BINS = 10
EPS = 1e-4


def _bin_shares(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares per interior bin plus a final 'missing' bin."""
    miss = ~np.isfinite(x)
    idx = np.searchsorted(edges, x[~miss], side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(np.float64)
    counts = np.append(counts, miss.sum())
    return counts / max(1, x.size)


def reference(frame: pl.DataFrame, features: list[str], bins: int = BINS) -> dict[str, Any]:
    """Bin edges (training quantiles) and training shares per feature."""
    out: dict[str, Any] = {}
    for f in features:
        if f not in frame.columns:
            continue
        x = frame[f].cast(pl.Float64).to_numpy()
        fin = x[np.isfinite(x)]
        edges = np.unique(np.quantile(fin, np.linspace(0, 1, bins + 1)[1:-1])) if fin.size \
            else np.zeros(0)
        out[f] = {"edges": edges.tolist(), "shares": _bin_shares(x, edges).tolist()}
    return out


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.clip(np.asarray(expected, dtype=np.float64), EPS, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_of(train: np.ndarray, recent: np.ndarray, bins: int = BINS) -> float:
    """PSI between two samples directly (bins from the first)."""
    ref = reference(pl.DataFrame({"x": train}), ["x"], bins)["x"]
    edges = np.asarray(ref["edges"])
    return psi(np.asarray(ref["shares"]), _bin_shares(np.asarray(recent, np.float64), edges))


def check(ref: dict[str, Any], frame: pl.DataFrame, threshold: float = DEFAULT_THRESHOLD,
          min_rows: int = 30) -> pl.DataFrame:
    """PSI and drift flag per feature of a recent frame against a model's reference."""
    rows = []
    for f, r in ref.items():
        if f not in frame.columns:
            continue
        x = frame[f].cast(pl.Float64).to_numpy()
        if x.size < min_rows:
            rows.append((f, None, False))
            continue
        v = psi(np.asarray(r["shares"]), _bin_shares(x, np.asarray(r["edges"])))
        rows.append((f, v, v > threshold))
    return pl.DataFrame(rows, schema={"feature": pl.String, "psi": pl.Float64,
                                      "drift": pl.Boolean}, orient="row").sort(
        "psi", descending=True, nulls_last=True)


def drifted(ref: dict[str, Any], frame: pl.DataFrame, threshold: float = DEFAULT_THRESHOLD
            ) -> list[str]:
    """Features whose distribution moved beyond the threshold."""
    return check(ref, frame, threshold).filter(pl.col("drift"))["feature"].to_list()
