"""Master data: the seeded plant, idempotent reloads, runtime state kept, bad references named."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlmodel import select

from core.clock import FrozenClock
from core.config import LoadedConfig
from core.masterdata import (
    MasterDataError,
    ensure_master_data,
    load_master_data,
    lot_id,
    lot_quantities,
    plant_epoch,
)
from core.store.db import Store, to_url
from core.store.models import Lot, Meta, Operation, ProductionOrder, Stock, User

PLANT_START = datetime(2026, 1, 5, 6, 0, 0, tzinfo=UTC)  # the conftest's frozen clock
MASTER = Path(__file__).resolve().parents[2] / "data" / "master.toml"


def dump(store_or_path: Store | Path) -> dict[str, list[tuple]]:
    """Every row of every table, ordered: the whole store as data (either engine)."""
    target = store_or_path.target if isinstance(store_or_path, Store) else store_or_path
    engine = create_engine(to_url(str(target)))
    try:
        with engine.connect() as con:
            return {t: sorted((tuple(r) for r in con.exec_driver_sql(f'SELECT * FROM "{t}"')),
                              key=repr)
                    for t in inspect(con).get_table_names()}
    finally:
        engine.dispose()


def test_seeded_plant(store: Store) -> None:
    with store.session() as s:
        orders = s.exec(select(ProductionOrder)).all()
        lots = s.exec(select(Lot)).all()
        assert len(orders) == 24
        for o in orders:
            mine = [lot for lot in lots if lot.order_id == o.id]
            assert sum(lot.quantity for lot in mine) == o.quantity
            assert o.release_at >= PLANT_START and o.due_at > o.release_at
        po7 = s.get(ProductionOrder, "PO-0007")
        assert po7 is not None
        assert po7.release_at == PLANT_START + timedelta(hours=13.9)
        assert po7.due_at == PLANT_START + timedelta(hours=39.1)
        assert s.get(Lot, "L-00702") is not None  # PO-0007 lot 2
        # P-SH20 has 4 routing steps; moulding step on line B has two eligible machines
        assert len(s.exec(select(Operation).where(Operation.order_id == "PO-0007")).all()) == 4
        assert s.get(Operation, "PO-0003-20").equipment_id is None  # B-MOLD1 or B-MOLD2
        assert s.get(Operation, "PO-0003-10").equipment_id == "B-DRY1"
        assert {u.id for u in s.exec(select(User)).all()} == {
            "olga", "sam", "maya", "quinn", "tom", "ada"}
    assert plant_epoch(store) == PLANT_START
    assert store.count(Stock) == 15


def test_lot_ids_and_sizes() -> None:
    assert lot_id("PO-0007", 2) == "L-00702"
    assert lot_id("PO-0024", 11) == "L-02411"
    assert lot_quantities(500, 100) == [100] * 5
    assert lot_quantities(1200, 150) == [150] * 8
    assert lot_quantities(250, 100) == [100, 100, 50]


def test_loading_twice_leaves_identical_rows(store: Store, loaded_config: LoadedConfig) -> None:
    before = dump(store)
    later = FrozenClock(PLANT_START + timedelta(days=3, hours=5, minutes=17))
    report = load_master_data(store, loaded_config, later)
    assert not report.changed
    assert report.epoch == PLANT_START  # the epoch is kept, dates do not move
    assert dump(store) == before
    assert ensure_master_data(store, loaded_config, later) is None  # not empty: no reload


def test_reload_keeps_runtime_state(store: Store, loaded_config: LoadedConfig,
                                    frozen_clock: FrozenClock) -> None:
    with store.session() as s:
        lot = s.get(Lot, "L-00101")
        order = s.get(ProductionOrder, "PO-0001")
        stock = s.get(Stock, "A-LS:B-0001")
        assert lot and order and stock
        lot.status, lot.equipment_id = "wip", "A-MILL1"
        order.status = "in_progress"
        stock.quantity = 123.0
        s.commit()
    load_master_data(store, loaded_config, frozen_clock)
    with store.session() as s:
        assert (s.get(Lot, "L-00101").status, s.get(Lot, "L-00101").equipment_id) == (
            "wip", "A-MILL1")
        assert s.get(ProductionOrder, "PO-0001").status == "in_progress"
        assert s.get(Stock, "A-LS:B-0001").quantity == 123.0


def test_changed_master_data_updates_rows_in_place(store: Store, loaded_config: LoadedConfig,
                                                   frozen_clock: FrozenClock,
                                                   tmp_path: Path) -> None:
    text = MASTER.read_text(encoding="utf-8").replace(
        'customer = "Orbis Rail"\n\n[[orders]]\nid = "PO-0006"',
        'customer = "Orbis Rail GmbH"\n\n[[orders]]\nid = "PO-0006"')
    assert "Orbis Rail GmbH" in text
    edited = tmp_path / "master.toml"
    edited.write_text(text, encoding="utf-8")
    assert ensure_master_data(store, loaded_config, frozen_clock) is None  # unchanged
    loaded_config.config.master_data = str(edited)
    n_before = store.count(ProductionOrder)
    report = ensure_master_data(store, loaded_config, frozen_clock)  # sources changed
    assert report is not None
    assert report.updated["production_order"] == 1
    assert sum(report.inserted.values()) == 0
    assert store.count(ProductionOrder) == n_before
    with store.session() as s:
        assert s.get(ProductionOrder, "PO-0005").customer == "Orbis Rail GmbH"
        assert s.exec(select(Meta).where(Meta.key == "plant_epoch")).one().value.startswith(
            "2026-01-05T06:00")
    assert ensure_master_data(store, loaded_config, frozen_clock) is None  # applied once


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('id = "PO-0004"\nproduct = "P-HL"', 'id = "PO-0004"\nproduct = "P-NOPE"',
     r"orders\[3\] \(PO-0004\): unknown product 'P-NOPE'"),
    ('{ step = 20, equipment = ["A-MILL1"], cycle_s = 45 }',
     '{ step = 20, equipment = ["A-MILL9"], cycle_s = 45 }',
     r"recipes\[0\] \(R-SH20\): routing step 20: unknown equipment 'A-MILL9'"),
    ('id = "B-0002"\nmaterial = "M-ST20"', 'id = "B-0002"\nmaterial = "M-UNOBTAINIUM"',
     r"batches\[1\] \(B-0002\): unknown material 'M-UNOBTAINIUM'"),
    ('crew = ["sam"]', 'crew = ["sam", "nobody"]',
     r"shifts\[2\] \(night\): unknown user 'nobody'"),
    ('{ step = 10, equipment = ["C-EXTR1"]', '{ step = 10, equipment = ["B-DRY1"]',
     r"recipes\[4\] \(R-PR40\): routing step 10: equipment 'B-DRY1' is not on line C"),
    ('quantity = 400\nrelease_h = 0.0', 'quantity = "many"\nrelease_h = 0.0',
     r"orders\[0\]\.quantity: expected a valid integer"),
])
def test_bad_references_are_named(store: Store, loaded_config: LoadedConfig,
                                  frozen_clock: FrozenClock, tmp_path: Path,
                                  old: str, new: str, expected: str) -> None:
    text = MASTER.read_text(encoding="utf-8")
    assert old in text
    bad = tmp_path / "master.toml"
    bad.write_text(text.replace(old, new, 1), encoding="utf-8")
    loaded_config.config.master_data = str(bad)
    before = dump(store)
    with pytest.raises(MasterDataError) as err:
        load_master_data(store, loaded_config, frozen_clock)
    msg = str(err.value)
    assert msg.startswith(str(bad)), msg
    assert re.search(expected, msg), msg
    assert dump(store) == before  # nothing half-loaded


def test_missing_master_file_is_a_clear_error(loaded_config: LoadedConfig, store: Store,
                                              frozen_clock: FrozenClock,
                                              tmp_path: Path) -> None:
    loaded_config.config.master_data = str(tmp_path / "nope.toml")
    with pytest.raises(MasterDataError, match=r"nope\.toml: no such file"):
        load_master_data(store, loaded_config, frozen_clock)


SEED_SCRIPT = """
import sys
from core.clock import WallClock
from core.config import load_config
from core.masterdata import ensure_master_data
from core.store.db import open_store
loaded = load_config(sys.argv[1])
store = open_store(sys.argv[2])
report = ensure_master_data(store, loaded, WallClock())
store.close()
print(sum(report.inserted.values()) if report else 0)
"""


def test_processes_seeding_a_new_store_at_once_take_turns(config_path: Path, tmp_path: Path,
                                                          store: Store,
                                                          request: pytest.FixtureRequest) -> None:
    import subprocess
    import sys

    # a new store on the same engine as the fixture's (PostgreSQL: a new empty database)
    db: Path | str = tmp_path / "race.db"
    if store.dialect == "postgresql":
        db = request.getfixturevalue("pg_url")
    repo = str(Path(__file__).resolve().parents[2])
    procs = [subprocess.Popen([sys.executable, "-c", SEED_SCRIPT, str(config_path), str(db)],
                              cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in results]
    inserted = sorted(int(out) for out, _ in results)
    assert inserted[-1] > 0 and inserted[:-1] == [0, 0]  # exactly one process seeded
    # same rows as a single load (the fixture's), table by table
    assert {t: len(r) for t, r in dump(db).items()} == {
        t: len(r) for t, r in dump(store).items()}
