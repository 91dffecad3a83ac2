"""`loopline export`: files read back with polars equal the store rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from engine.helpers import PINS, add_genealogy, bearing, make_engine, spc
from engine.helpers import PLANT_START as T0
from sqlmodel import select

from core.ingest.archive import archive
from core.samples import Quality
from core.store.db import exec_sql
from core.store.models import (
    AuditEntry,
    EquipmentStateInterval,
    Hold,
    HoldLot,
    Lot,
    Recommendation,
    WorkOrder,
)
from core.store.sample_writer import write_samples


def _store_rows(store, model) -> list[dict]:
    with store.session() as s:
        return [r.model_dump() for r in s.exec(select(model)).all()]


def _same(df: pl.DataFrame, rows: list[dict], key: str) -> None:
    got = sorted(df.to_dicts(), key=lambda r: r[key])
    want = sorted(rows, key=lambda r: r[key])
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        assert {k: g[k] for k in w} == w


def _export(cli, tmp_path: Path, dataset: str, fmt: str = "parquet", *extra: str) -> Path:
    out = tmp_path / "out" / f"{dataset}.{fmt}"
    rc, text, err = cli("export", dataset, "--format", fmt, "--out", str(out), *extra,
                        "--json")
    assert rc == 0, err
    summary = json.loads(text)
    assert summary["path"] == str(out) and out.is_file()
    return out


def _activity(store, loaded_config, now_clock) -> None:
    add_genealogy(store, T0)
    eng = make_engine(store, loaded_config, now_clock)
    wo = eng.on_detection(bearing(now_clock.now())).recommendation_id
    hold = eng.on_detection(spc(now_clock.now())).recommendation_id
    eng.approve(wo, user_id="maya", pin=PINS["maya"])
    eng.approve(hold, user_id="quinn", pin=PINS["quinn"])
    eng.run_outbox()  # a work order and a hold with its lots


def test_table_exports_equal_the_store(store, loaded_config, now_clock, cli, tmp_path):
    _activity(store, loaded_config, now_clock)
    for dataset, model, key in (("recommendations", Recommendation, "id"),
                                ("workorders", WorkOrder, "id"), ("lots", Lot, "id"),
                                ("audit", AuditEntry, "seq")):
        df = pl.read_parquet(_export(cli, tmp_path, dataset))
        _same(df, _store_rows(store, model), key)
    holds = pl.read_parquet(_export(cli, tmp_path, "holds"))
    _same(holds, _store_rows(store, Hold), "id")
    lots = sorted(r["lot_id"] for r in _store_rows(store, HoldLot))
    assert holds["lots"].to_list() == [",".join(lots)]
    # CSV carries the same rows
    pq = pl.read_parquet(_export(cli, tmp_path, "recommendations"))
    csv = pl.read_csv(_export(cli, tmp_path, "recommendations", "csv"), schema=pq.schema)
    assert csv.equals(pq)


def test_since_until_filter(store, loaded_config, now_clock, cli, tmp_path):
    _activity(store, loaded_config, now_clock)
    all_rows = _store_rows(store, AuditEntry)
    cut = sorted(r["ts"] for r in all_rows)[len(all_rows) // 2]
    df = pl.read_parquet(_export(cli, tmp_path, "audit", "parquet", "--since",
                                 cut.isoformat()))
    assert df.height == sum(1 for r in all_rows if r["ts"] >= cut) > 0
    df = pl.read_parquet(_export(cli, tmp_path, "audit", "parquet", "--until",
                                 cut.isoformat()))
    assert df.height == sum(1 for r in all_rows if r["ts"] < cut)
    rc, _, err = cli("export", "audit", "--out", str(tmp_path / "a.parquet"), "--since",
                     "05/01/2026")
    assert rc == 1 and "ISO-8601" in err


def test_samples_include_the_parquet_archive(store, cli, tmp_path):
    tags = ["A-LATHE1.bearing_temp", "C-EXTR1.zone_temp"]
    rows = []
    for i in range(48 * 2):  # 48 h, one sample per 30 min per tag, a few Bad
        ts = T0 + timedelta(minutes=30 * i)
        for k, tag in enumerate(tags):
            bad = i % 17 == 3
            rows.append({"tag_id": tag, "ts": ts, "value": None if bad else i + 1000.0 * k,
                         "quality": int(Quality.BAD if bad else Quality.GOOD),
                         "line_id": "A" if k == 0 else "C", "lot_id": f"L-{k}"})
    with store.begin() as c:
        write_samples(c, rows)
    arch = tmp_path / "history"
    rep = archive(store.target, arch, T0 + timedelta(hours=48), hot_window_h=24)
    assert 0 < rep.rows < len(rows)  # half archived, half still hot
    df = pl.read_parquet(_export(cli, tmp_path, "samples", "parquet", "--archive",
                                 str(arch)))
    got = sorted((r["tag_id"], r["ts"], r["value"], r["quality"], r["lot_id"])
                 for r in df.to_dicts())
    want = sorted((r["tag_id"], r["ts"], r["value"], r["quality"], r["lot_id"])
                  for r in rows)
    assert got == want
    # hot rows only
    hot = pl.read_parquet(_export(cli, tmp_path, "samples", "parquet", "--archive", "none"))
    with store.engine.connect() as c:
        n_hot = exec_sql(c, "SELECT (SELECT count(*) FROM sample) + "
                                  "(SELECT coalesce(sum(n), 0) FROM sample_chunk)").scalar()
    assert hot.height == n_hot == len(rows) - rep.rows
    # a range across the hot/archive boundary
    since, until = T0 + timedelta(hours=20), T0 + timedelta(hours=28)
    df = pl.read_parquet(_export(cli, tmp_path, "samples", "parquet", "--archive", str(arch),
                                 "--since", since.isoformat(), "--until", until.isoformat()))
    assert df.height == sum(1 for r in rows if since <= r["ts"] < until) == 2 * 16


def test_oee_export_per_equipment_and_shift(store, cli, tmp_path):
    def t(h: int) -> datetime:
        return datetime(2026, 1, 5, h, tzinfo=UTC)
    with store.session() as s:
        s.add(EquipmentStateInterval(equipment_id="A-LATHE1", state="running", start=t(6),
                                     end=t(10)))
        s.add(EquipmentStateInterval(equipment_id="A-LATHE1", state="down_unplanned",
                                     start=t(10), end=t(16)))
        s.commit()
    df = pl.read_parquet(_export(cli, tmp_path, "oee", "parquet", "--since",
                                 "2026-01-05T06:00Z", "--until", "2026-01-05T22:00Z"))
    assert df.height == 2 * 12  # early and late, twelve machines
    lathe = df.filter(pl.col("equipment_id") == "A-LATHE1").sort("window_start")
    assert lathe["shift_id"].to_list() == ["early", "late"]
    assert lathe["run_s"].to_list() == [4 * 3600.0, 0.0]
    assert lathe["planned_busy_s"].to_list() == [8 * 3600.0, 2 * 3600.0]
    assert lathe["availability"].to_list() == [0.5, 0.0]
