"""The twin in both context modes at once: line A takes its context from dispatch (the
twin's order/lot tags are ignored there), the other lines from their device tags. A start
through the store reaches the running runtime's contextualizer on its next upkeep."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from core.auth import Authenticator
from core.clock import WallClock
from core.config import LoadedConfig
from core.dispatch import Dispatcher
from core.masterdata import ensure_master_data
from core.store.db import exec_sql, open_store
from runtime.host import Runtime, RuntimeOptions
from runtime.twin import free_port

EQ = "A-LATHE1"


async def _until(pred, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(pred):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.5)


async def test_twin_line_in_dispatch_mode_and_lines_in_device_mode(
        tmp_path: Path, loaded_config: LoadedConfig) -> None:
    loaded_config.config.lines[0].context_source = "dispatch"
    loaded_config.config.store.spill_dir = str(tmp_path / "spill")
    loaded_config.config.store.archive_dir = str(tmp_path / "history")
    store = open_store(str(tmp_path / "rt.db"))
    ensure_master_data(store, loaded_config, WallClock())
    rt = Runtime(loaded_config, store, RuntimeOptions(
        speed=60, seed=7, opcua_port=free_port(), modbus_port=free_port(), ml=False,
        approve="never", upkeep_every_s=0.5))
    await rt.start()

    def q(sql: str, *args: object) -> list[tuple]:
        with store.begin() as conn:
            return [tuple(r) for r in exec_sql(conn, sql, args).fetchall()]
    try:
        # before any dispatch, line A's machines carry no order although the twin runs one
        # (context is stored as intervals, each opened by the sample that carried it)
        await _until(lambda: q("SELECT count(*) FROM context_interval WHERE scope LIKE 'B-%' "
                               "AND lot_id IS NOT NULL")[0][0] > 0)
        assert q("SELECT count(*) FROM context_interval WHERE scope = ? "
                 "AND order_id IS NOT NULL", EQ) == [(0,)]
        auth = Authenticator(store.engine, loaded_config.config.users,
                             loaded_config.config.auth, rt.clock)
        d = await asyncio.to_thread(Dispatcher(store, auth, rt.clock).start, "sam", EQ,
                                    "PO-0001", operator_id="olga")
        await _until(lambda: q("SELECT count(*) FROM production_count WHERE equipment_id = ?"
                               " AND lot_id = ?", EQ, d.lot_id)[0][0] > 0)
        lots = q("SELECT DISTINCT lot_id, order_id, operator_id FROM context_interval "
                 "WHERE scope = ? AND order_id IS NOT NULL", EQ)
        assert lots == [(d.lot_id, "PO-0001", "olga")]  # never the twin's own lot numbers
    finally:
        await rt.stop()
        store.close()
