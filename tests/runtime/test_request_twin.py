"""An engineer's setpoint request on the running twin: the requester may not approve his
own (four-eyes), a second person's approval executes it exactly once through the outbox,
and the twin's setpoint follows; a value outside the recipe is refused at the request."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.auth import Authenticator, AuthError
from core.clock import WallClock
from core.config import LoadedConfig
from core.engine.decide import Decider
from core.history import history
from core.masterdata import ensure_master_data
from core.requests import Requester, RequestError
from core.store.db import exec_sql, open_store
from runtime.host import Runtime, RuntimeOptions
from runtime.twin import free_port

PINS = {"olga": "1111", "sam": "2222", "quinn": "4444"}
TAG = "A-LATHE1.speed_sp"


async def _until(pred, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(pred):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.25)


async def test_setpoint_request_executes_once_after_a_second_persons_approval(
        tmp_path: Path, loaded_config: LoadedConfig) -> None:
    cfg = loaded_config.config
    cfg.autonomy.four_eyes = ["setpoint"]
    cfg.store.spill_dir = str(tmp_path / "spill")
    cfg.store.archive_dir = str(tmp_path / "history")
    store = open_store(str(tmp_path / "rt.db"))
    ensure_master_data(store, loaded_config, WallClock())
    rt = Runtime(loaded_config, store, RuntimeOptions(
        speed=30, seed=11, opcua_port=free_port(), modbus_port=free_port(), ml=False,
        approve="never", upkeep_every_s=0.5))
    await rt.start()

    def q(sql: str, *args: object) -> list[tuple]:
        with store.begin() as conn:
            return [tuple(r) for r in exec_sql(conn, sql, args).fetchall()]

    def newest(n: int) -> list[tuple]:
        """The tag's newest samples (value, recipe), newest first, through core.history."""
        h = history(store, None, [TAG], datetime(2000, 1, 1, tzinfo=UTC),
                    datetime(2100, 1, 1, tzinfo=UTC))
        return list(reversed(h.select("value", "recipe_id").rows()))[:n]
    try:
        await _until(lambda: any(r[1] is not None for r in newest(1_000_000)))
        before = newest(1)[0]
        auth = Authenticator(store.engine, cfg.users, cfg.auth, rt.clock)
        req = Requester(store, auth, rt.clock, loaded_config.tags)
        with pytest.raises(RequestError, match="outside the recipe limits"):
            req.setpoint("quinn", "A-LATHE1", "speed_sp", 9000, reason="faster", pin="4444")
        with pytest.raises(AuthError, match="may not request"):
            req.setpoint("olga", "A-LATHE1", "speed_sp", 1700, reason="x", pin="1111")
        lim = q("SELECT lo, hi FROM recipe_setpoint WHERE id = ?",
                f"{before[1]}.lathe.speed_sp")[0]
        want = float(round((lim[0] + lim[1]) / 2 + 37))
        r = await asyncio.to_thread(req.setpoint, "quinn", "A-LATHE1", "speed_sp", want,
                                    reason="trial: finer finish", pin=PINS["quinn"])
        rec = q("SELECT decision_class, status, params FROM recommendation WHERE id = ?",
                r.recommendation_id)[0]
        assert rec[:2] == ("setpoint", "proposed") and '"requested_by": "quinn"' in rec[2]
        decider = Decider(store, auth, cfg.autonomy, rt.clock)
        with pytest.raises(AuthError, match="four-eyes"):
            decider.approve(r.recommendation_id, user_id="quinn", pin=PINS["quinn"])
        assert q("SELECT count(*) FROM action")[0][0] == 0
        a = await asyncio.to_thread(decider.approve, r.recommendation_id, user_id="sam",
                                    pin=PINS["sam"])
        assert a.action_id is not None and a.by == "sam"
        await _until(lambda: q("SELECT status FROM action WHERE id = ?", a.action_id)
                     == [("done",)])
        # the twin's setpoint follows (read back over OPC UA by the executor, then sampled)
        await _until(lambda: any(v is not None and abs(v - want) < 1e-3
                                 for v, _ in newest(3)))
    finally:
        await rt.stop()
    acts = q("SELECT kind, status, attempts FROM action WHERE recommendation_id = ?",
             r.recommendation_id)
    assert acts == [("write_setpoint", "done", 1)]
    assert q("SELECT status FROM recommendation WHERE id = ?",
             r.recommendation_id) == [("executed",)]
    audit = [a for (a,) in q("SELECT action FROM audit_entry WHERE entity_id = ? "
                             "ORDER BY seq", r.recommendation_id)]
    assert audit[0] == "rec.requested" and "decision.refused" in audit \
        and "decision.approved" in audit
    store.close()
