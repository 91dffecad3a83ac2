"""Registry: versions on disk, champion only when better on the same hold-out, rollback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ml import models, synthetic
from ml.features import FeatureSpec
from ml.registry import Registry, RegistryError


@pytest.fixture(scope="module")
def weak_model(plant: synthetic.SyntheticPlant, train_history: pl.DataFrame) -> models.Model:
    """Sees only cycle time and zone temperature, which bearing wear does not move."""
    spec = FeatureSpec(signals=("cycle_time", "zone_temp"))
    return models.train_equipment("failure", train_history, plant.events, spec=spec,
                                  n_estimators=20, name="failure_risk")


def _judge(plant: synthetic.SyntheticPlant, history: pl.DataFrame):
    return lambda m: models.evaluate(m, models.holdout_frame(m, history, plant.events))


def test_saved_model_scores_exactly_like_the_trained_one(
        tmp_path: Path, plant: synthetic.SyntheticPlant, failure_model: models.Model) -> None:
    reg = Registry(tmp_path / "models")
    rec = reg.save(failure_model)
    assert rec["version"] == 1 and rec["status"] == "challenger"
    assert rec["train_window"][0].startswith("2026-01-05") and rec["metrics"]["auc"] > 0.9
    loaded = reg.load("failure", 1)
    as_of = plant.at(150)
    a = models.score_history(failure_model, plant.history, plant.events, as_of=as_of)
    b = models.score_history(loaded, plant.history, plant.events, as_of=as_of)
    np.testing.assert_array_equal(a["score"].to_numpy(), b["score"].to_numpy())
    manifest = json.loads((tmp_path / "models" / "manifest.json").read_text())
    assert manifest["models"]["failure"]["versions"][0]["features"]
    assert (tmp_path / "models" / "failure" / "v1" / "main.ubj").exists()


def test_promotion_refuses_a_worse_challenger_and_rollback_restores(
        tmp_path: Path, plant: synthetic.SyntheticPlant, train_history: pl.DataFrame,
        failure_model: models.Model, weak_model: models.Model) -> None:
    reg = Registry(tmp_path)
    judge = _judge(plant, train_history)
    failure_model.name = weak_model.name = "failure_risk"
    v1 = reg.save(weak_model)["version"]
    first = reg.promote_if_better("failure_risk", v1, judge)
    assert first.promoted and first.reason == "no champion yet"
    v2 = reg.save(failure_model)["version"]
    d2 = reg.promote_if_better("failure_risk", v2, judge)
    assert d2.promoted and d2.challenger > d2.champion, d2
    v3 = reg.save(weak_model)["version"]
    d3 = reg.promote_if_better("failure_risk", v3, judge)
    assert not d3.promoted and d3.challenger < d3.champion
    assert "does not beat v2" in d3.reason
    status = {v["version"]: v["status"] for v in reg.versions("failure_risk")}
    assert status == {1: "retired", 2: "champion", 3: "challenger"}
    back = reg.rollback("failure_risk")
    assert back["version"] == 1
    status = {v["version"]: v["status"] for v in reg.versions("failure_risk")}
    assert status == {1: "champion", 2: "retired", 3: "challenger"}
    assert reg.load("failure_risk").features == weak_model.features
    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback("failure_risk")
    actions = [h["action"] for h in reg.history("failure_risk")]
    assert actions == ["promoted", "replaced", "promoted", "rollback"]
    failure_model.name = "failure"


def test_unknown_names_are_clear_errors(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    assert reg.versions() == []
    with pytest.raises(RegistryError, match="no model named 'nope'"):
        reg.rollback("nope")
    with pytest.raises(RegistryError, match="no model named"):
        reg.load("nope")
