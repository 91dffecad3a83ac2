"""`loopline status` on a fresh store, and clear messages when the store cannot be used."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from console.cli import main
from core.store import StoreError
from core.store.db import Store, open_store
from core.store.models import EquipmentStateInterval, Hold, HoldLot, Recommendation
from core.store.sample_writer import write_samples

REPO = Path(__file__).resolve().parents[2]
T = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)


def _status_json(config_path: Path, db: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    rc = main(["status", "--json", "--config", str(config_path), "--db", str(db)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out)


def test_status_json_on_a_fresh_store_shows_the_seeded_plant(
        config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "new" / "loopline.db"
    # a read-only command never creates a store (a mistyped --db is not a new plant)
    assert main(["status", "--config", str(config_path), "--db", str(db)]) == 1
    assert "no store at" in capsys.readouterr().err
    assert not db.parent.exists()
    open_store(str(db)).close()  # what the runtime does at its first start
    data = _status_json(config_path, db, capsys)
    assert db.is_file()
    assert [ln["id"] for ln in data["lines"]] == ["A", "B", "C"]
    assert len(data["equipment"]) == 12
    assert {e["state"] for e in data["equipment"]} == {"unknown"}
    assert len(data["orders"]) == 24
    assert data["counts"]["open_lots"] == len(data["lots"]) > 24
    assert data["holds"] == [] and data["recommendations"] == []
    # a second run reuses the store: same plant epoch, nothing duplicated
    again = _status_json(config_path, db, capsys)
    assert again["plant_epoch"] == data["plant_epoch"]
    assert again["counts"] == data["counts"]


def test_status_shows_states_holds_and_recommendations(
        store: Store, config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with store.session() as s:
        s.add(EquipmentStateInterval(equipment_id="A-LATHE1", state="idle", start=T, end=T))
        s.add(EquipmentStateInterval(equipment_id="A-LATHE1", state="down_unplanned",
                                     reason_code="spindle_fault", start=T.replace(hour=8)))
        s.add(EquipmentStateInterval(equipment_id="B-MOLD1", state="running", start=T,
                                     end=T.replace(hour=9)))  # closed: not current
        s.add(Recommendation(id="R-7", decision_class="work_order", target="A-LATHE1",
                             action="create_work_order", problem_key="k", created_at=T,
                             required_role="maintenance", confidence=0.8))
        s.add(Hold(id="NCR-3", reason="diameter out of spec", created_at=T))
        s.flush()
        s.add(HoldLot(hold_id="NCR-3", lot_id="L-00102"))
        s.commit()
    data = _status_json(config_path, store.target, capsys)
    eq = {e["id"]: e for e in data["equipment"]}
    assert (eq["A-LATHE1"]["state"], eq["A-LATHE1"]["reason_code"]) == (
        "down_unplanned", "spindle_fault")
    assert eq["B-MOLD1"]["state"] == "unknown"
    assert data["lines"][0]["states"] == {"down_unplanned": 1, "unknown": 3}
    assert [h["lots"] for h in data["holds"]] == [["L-00102"]]
    assert [r["id"] for r in data["recommendations"]] == ["R-7"]
    rc = main(["status", "--config", str(config_path), "--db", str(store.target)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Open orders (24)" in out and "down_unplanned" in out and "NCR-3" in out


def test_status_as_a_new_user_runs_it(tmp_path: Path) -> None:
    """The console script path, in a subprocess, from another working directory."""
    env = {**os.environ, "LOOPLINE_DB": str(tmp_path / "fresh.db")}
    env.pop("LOOPLINE_CONFIG", None)
    open_store(str(tmp_path / "fresh.db")).close()  # created by the runtime's first start
    proc = subprocess.run(
        [sys.executable, "-m", "console.cli", "--config", str(REPO / "config.toml"),
         "status", "--json"],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (len(data["lines"]), len(data["equipment"]), len(data["orders"])) == (3, 12, 24)


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)  # SQLite's file lock
def test_locked_store_gives_a_clear_error(store: Store) -> None:
    assert store.path is not None
    holder = sqlite3.connect(store.path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process is writing
        holder.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
        other = open_store(str(store.path), busy_timeout_ms=100)
        try:
            with pytest.raises(StoreError, match="is locked by another process"), \
                    other.begin() as conn:
                write_samples(conn, [{"tag_id": "A.x", "ts": T, "value": 1.0}])
        finally:
            other.close()
    finally:
        holder.close()


def test_locked_store_in_the_cli_is_a_message_not_a_traceback(
        config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "busy.db"
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("CREATE TABLE other_tool (x INTEGER)")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("INSERT INTO other_tool VALUES (1)")
        monkeypatch.setenv("LOOPLINE_BUSY_TIMEOUT_MS", "100")
        rc = main(["status", "--json", "--config", str(config_path), "--db", str(db)])
    finally:
        holder.close()
    err = capsys.readouterr().err
    assert rc == 1
    assert f"the store {db} is locked by another process" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("kind", ["garbage", "folder"])
def test_unusable_store_file_is_named(config_path: Path, tmp_path: Path, kind: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "x.db"
    if kind == "garbage":
        db.write_bytes(b"this is not sqlite\n" * 100)
    else:
        db.mkdir()
    rc = main(["status", "--config", str(config_path), "--db", str(db)])
    err = capsys.readouterr().err
    assert rc == 1
    assert str(db) in err and "Traceback" not in err
    assert ("not a readable loopline database" if kind == "garbage" else "is a folder") in err


def test_bad_master_data_in_the_cli_names_the_entry(
        config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    master = (REPO / "data" / "master.toml").read_text(encoding="utf-8")
    bad = tmp_path / "master.toml"
    bad.write_text(master.replace('product = "P-HL"\nquantity = 600\nrelease_h = 6.7',
                                  'product = "P-XL"\nquantity = 600\nrelease_h = 6.7'),
                   encoding="utf-8")
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_path.read_text(encoding="utf-8").replace(
        'master_data = "data/master.toml"', f'master_data = "{bad}"'), encoding="utf-8")
    open_store(str(tmp_path / "s.db")).close()
    rc = main(["status", "--config", str(cfg), "--db", str(tmp_path / "s.db")])
    err = capsys.readouterr().err
    assert rc != 0
    line = next(n for n, t in enumerate(bad.read_text().splitlines(), 1)
                if t.strip() == 'id = "PO-0004"') - 1  # its [[orders]] header
    assert f"{bad}:{line}: orders[3] (PO-0004): unknown product 'P-XL'" in err
    assert "Traceback" not in err
