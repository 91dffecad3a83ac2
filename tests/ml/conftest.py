"""Shared fixtures: one seeded run-to-failure plant and models trained on it once."""

from __future__ import annotations

import polars as pl
import pytest

from ml import models, synthetic
from ml.synthetic import Fault

# Five failures to learn from in days 1-5, then M0002 degrades and fails at 160 h.
TRAIN_FAULTS = [Fault(1, 30), Fault(3, 60), Fault(5, 85), Fault(0, 110), Fault(6, 125)]
FINAL = Fault(2, 160)
TRAIN_END_H = 140.0
TREES = 60


@pytest.fixture(scope="session")
def plant() -> synthetic.SyntheticPlant:
    return synthetic.generate(8, days=7, seed=1, faults=[*TRAIN_FAULTS, FINAL])


@pytest.fixture(scope="session")
def train_history(plant: synthetic.SyntheticPlant) -> pl.DataFrame:
    return plant.history.filter(pl.col("ts") < plant.at(TRAIN_END_H))


@pytest.fixture(scope="session")
def failure_model(plant: synthetic.SyntheticPlant, train_history: pl.DataFrame) -> models.Model:
    return models.train_equipment("failure", train_history, plant.events, n_estimators=TREES)


@pytest.fixture(scope="session")
def final() -> Fault:
    """The failure the models must see coming (after the training period)."""
    return FINAL
