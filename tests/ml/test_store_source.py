"""The store as the ML data source: samples, state intervals, work orders, ModelVersion rows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
from sqlmodel import select

from core.store.db import Store
from core.store.models import (
    Action,
    EquipmentStateInterval,
    ModelVersion,
    Outcome,
    Recommendation,
    WorkOrder,
)
from core.store.sample_writer import write_samples
from ml import models, synthetic
from ml.jobs import train_and_register
from ml.registry import Registry
from ml.store_source import StoreSource, mirror_versions

EQUIPMENT = ["A-LATHE1", "A-MILL1", "A-GRIND1", "B-MOLD1"]
JOB_KW = {"name": "failure_risk", "model": "failure", "horizon_h": 8}


def _plant_in_store(store: Store) -> synthetic.SyntheticPlant:
    plant = synthetic.generate(4, days=3, sample_s=300, seed=5, bad_frac=0.02,
                               faults=[synthetic.Fault(1, 30), synthetic.Fault(2, 55)])
    names = dict(zip(plant.equipment, EQUIPMENT, strict=True))
    rename = pl.col("equipment_id").replace_strict(names)
    h = plant.history.with_columns(
        (rename + "." + pl.col("tag_id").str.split(".").list.last()).alias("tag_id"),
        rename.alias("equipment_id"), pl.lit("A").alias("line_id"),
        pl.lit(None, pl.String).alias("text_value"), pl.lit(None, pl.String).alias("reason"))
    with store.begin() as conn:
        write_samples(conn, h.to_dicts())
    with store.session() as s:
        for i, row in enumerate(plant.events.states.iter_rows(named=True)):
            eq = names[row["equipment_id"]]
            s.add(EquipmentStateInterval(equipment_id=eq, state=row["state"],
                                         reason_code="bearing", start=row["start"],
                                         end=row["end"]))
            s.add(WorkOrder(id=f"WO-T{i}", kind="corrective", equipment_id=eq,
                            fault_mode="bearing", status="done", completed_at=row["end"],
                            created_at=row["start"]))
        # A predictive work order on B-MOLD1 whose outcome says it found the fault.
        at = plant.at(60)
        s.add(Recommendation(id="R-1", decision_class="work_order", target="B-MOLD1",
                             action="create_work_order", problem_key="wear:B-MOLD1",
                             created_at=at - timedelta(hours=5)))
        s.add(WorkOrder(id="WO-P1", kind="predictive", equipment_id="B-MOLD1",
                        fault_mode="bearing", status="done", completed_at=at,
                        created_at=at - timedelta(hours=4), recommendation_id="R-1"))
        s.flush()
        act = Action(recommendation_id="R-1", kind="work_order", idempotency_key="k-1",
                     status="done", created_at=at - timedelta(hours=4))
        s.add(act)
        s.flush()
        s.add(Outcome(action_id=act.id, window_start=at, window_end=at + timedelta(hours=8),
                      label="effective", recorded_at=at + timedelta(hours=8)))
        s.commit()
    plant.history = h.drop("text_value", "reason")
    return plant


def test_store_source_feeds_training_and_models_are_mirrored(store: Store,
                                                            tmp_path: Path) -> None:
    from core.config.schema import MlJob

    plant = _plant_in_store(store)
    tags = plant.history["tag_id"].unique().to_list()
    src = StoreSource(store, tmp_path / "no-archive", tags)
    end = plant.at(72)
    hist = src.history(None, end)
    assert hist.height == plant.history.height
    assert set(hist["equipment_id"].unique()) == set(EQUIPMENT)
    assert hist.filter(pl.col("quality") == 2)["value"].null_count() == \
        hist.filter(pl.col("quality") == 2).height
    later = src.history(plant.at(70), end)
    assert later["ts"].min() > plant.at(70) and later["ts"].max() <= end
    ev = src.events(None, end)
    assert ev.unplanned().height == 2
    assert sorted(ev.maintenance["equipment_id"].to_list()) == ["A-GRIND1", "A-MILL1",
                                                                "B-MOLD1"]
    assert ev.prevented is not None
    assert ev.prevented.select("equipment_id", "ts").rows() == [("B-MOLD1", plant.at(60))]
    assert src.quality(None, end) is None  # no quality measurements recorded yet

    reg = Registry(tmp_path / "models")
    res = train_and_register(str(reg.root), MlJob(**JOB_KW), hist, ev, None, n_estimators=30)
    assert res["decision"]["promoted"]
    model = reg.load("failure_risk")
    s = models.score_history(model, hist, ev, as_of=plant.at(55) - timedelta(hours=3))
    assert s.sort("score", descending=True)["equipment_id"][0] == "A-GRIND1"
    assert mirror_versions(store, reg) == 1
    with store.session() as sess:
        rows = sess.exec(select(ModelVersion)).all()
    assert [(r.name, r.version, r.status) for r in rows] == [("failure_risk", 1, "champion")]
    assert rows[0].train_start is not None and "auc" in rows[0].metrics
