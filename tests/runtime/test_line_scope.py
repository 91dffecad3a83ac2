"""A runtime's line scope on the default plant: which tags and drivers it runs, and which
outbox actions are its to execute (by the line they act on, and only under its lease)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import insert, select

from core.clock import FrozenClock, utcnow
from core.config import LoadedConfig
from core.engine.outbox import Executor
from core.masterdata import load_master_data
from core.store import leases
from core.store.db import Store, open_store
from core.store.models import Action
from runtime.line_scope import LineScope, LineScopeError

ACT = Action.__table__  # type: ignore[attr-defined]


@pytest.fixture
def store(db_url: str, loaded_config: LoadedConfig, frozen_clock: FrozenClock
          ) -> Iterator[Store]:
    """The plant's store on each engine (SQLite file, throwaway PostgreSQL database)."""
    st = open_store(db_url)
    load_master_data(st, loaded_config, frozen_clock)
    try:
        yield st
    finally:
        st.close()


def _action(store: Store, kind: str, params: dict[str, Any]) -> int:
    with store.begin() as conn:
        return int(conn.execute(insert(ACT).values(
            kind=kind, params=json.dumps(params), idempotency_key=f"k-{kind}-{params}",
            status="pending", attempts=0, result="",
            created_at=utcnow())).inserted_primary_key[0])


def test_scope_reads_only_its_lines(loaded_config: LoadedConfig) -> None:
    full = LineScope(loaded_config)
    assert not full.partial and full.home and full.io_config is loaded_config
    c = LineScope(loaded_config, ["C"])
    assert c.partial and not c.home and c.drivers_used() == {"modbus"}
    assert {t.line_id for t in c.io_config.tags} == {"C"}
    b = LineScope(loaded_config, ["B"])
    # line B shares the OPC UA server with the plant clock: read for plant time, not stored
    assert b.drivers_used() == {"opcua"} and "plant.clock" in b.read_only_tags
    assert all(t.line_id == "B" for t in b.data_config.tags)
    a = LineScope(loaded_config, ["A"])
    assert a.home and not a.read_only_tags and "plant.clock" in {t.id for t in a.data_config.tags}
    with pytest.raises(LineScopeError, match="no line Z"):
        LineScope(loaded_config, ["A", "Z"])


def test_each_action_belongs_to_one_line(store: Store, loaded_config: LoadedConfig) -> None:
    ids = [
        ("A", _action(store, "write_setpoint", {"tag_id": "A-LATHE1.feed_sp"})),
        ("B", _action(store, "send_command", {"equipment_id": "B-MOLD1", "command": "x"})),
        ("C", _action(store, "hold_lots", {"lots": ["L-00501"]})),  # an order of line C
        ("B", _action(store, "replenish", {"material_id": "M", "to_location": "B-LS"})),
        (None, _action(store, "retrain_model", {"model": "anomaly"})),
    ]
    scopes = {k: LineScope(loaded_config, [k]) for k in "ABC"}
    with store.begin() as conn:
        for line, aid in ids:
            row = conn.execute(select(ACT).where(ACT.c.id == aid)).one()
            owners = [k for k, sc in scopes.items() if sc.owns_action(conn, row, None)]
            assert owners == [line or "A"], (line, owners)  # plant-wide: the home runtime


def test_executor_claims_only_its_lines_under_its_lease(store: Store,
                                                        loaded_config: LoadedConfig,
                                                        frozen_clock: Any) -> None:
    a_id = _action(store, "send_command", {"equipment_id": "A-MILL1", "command": "x"})
    c_id = _action(store, "send_command", {"equipment_id": "C-PRESS1", "command": "x"})
    scope = LineScope(loaded_config, ["C"])
    ex = Executor(store, {}, frozen_clock)
    ex.accepts = lambda conn, row: scope.owns_action(conn, row, "me")
    assert ex.pending() == []  # no lease yet: nothing is ours
    leases.acquire(store, ["C"], "me", 30)
    assert ex.pending() == [c_id]
    assert ex.claim(a_id) is None  # another line's action is never claimed
    done = ex.run_once()
    assert [(d.action_id, d.status) for d in done] == [(c_id, "failed")]  # no adapter here
