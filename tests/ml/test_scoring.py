"""Scoring internals: model input matrix, prediction threads, the own-normal median."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl

from ml import models, synthetic
from ml.features import _nanmedian


def test_matrix_orders_casts_and_marks_absent_columns_missing() -> None:
    df = pl.DataFrame({"b": [1, 2, 3], "a": [0.5, None, 2.5], "c": [True, False, True]})
    x = models.matrix(df, ["a", "b", "c", "gone"])
    assert x.dtype == np.float64 and x.flags["C_CONTIGUOUS"] and x.shape == (3, 4)
    np.testing.assert_array_equal(x[:, 1], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(x[:, 2], [1.0, 0.0, 1.0])
    assert np.isnan(x[1, 0]) and x[2, 0] == 2.5  # null -> NaN, xgboost's missing
    assert np.isnan(x[:, 3]).all()


def test_small_batches_predict_on_one_thread_and_give_the_same_scores(
        failure_model: models.Model, plant: synthetic.SyntheticPlant) -> None:
    frame = models.features_for(failure_model, plant.history, plant.events,
                                as_of=plant.at(100))
    b = failure_model.boosters["main"]
    x = models.matrix(frame, failure_model.features["main"])
    b.set_param({"nthread": 2})
    b._loopline_nthread = None  # type: ignore[attr-defined]
    two = b.inplace_predict(x)
    s = models.score(failure_model, frame)
    assert b._loopline_nthread == 1  # type: ignore[attr-defined]
    np.testing.assert_allclose(s["score"].to_numpy(), two, rtol=1e-6)
    models.threads_for(b, models.SMALL_BATCH)
    assert b._loopline_nthread == 0  # type: ignore[attr-defined]


def test_nanmedian_matches_numpy_and_needs_enough_values() -> None:
    rng = np.random.default_rng(3)
    w = rng.normal(size=(200, 10, 48))
    w[rng.random(w.shape) < 0.6] = np.nan
    w[0, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = np.nanmedian(w, axis=-1)
    ref[np.isfinite(w).sum(axis=-1) < 12] = np.nan
    np.testing.assert_allclose(_nanmedian(w, 12), ref, equal_nan=True)
    assert np.isnan(_nanmedian(w, 12)[0, 0])
