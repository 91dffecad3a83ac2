"""A refused identity through the whole runtime: the data-quality alarm names the reason,
the summary lists it under errors, the driver stats say the driver gave up."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from driver_helpers import free_port, wait_until, write_config
from sqlalchemy import select

from core.clock import WallClock
from core.masterdata import load_master_data
from core.store.db import open_store
from core.store.models import Alarm
from runtime.host import Runtime, RuntimeOptions

MASTER = """
[[products]]
id = "P1"
name = "Part"
line = "L"
lot_size = 10
characteristic = { name = "d", unit = "mm", target = 1.0, lsl = 0.9, usl = 1.1 }
"""


class NoAnonymous:
    """A server that wants a user: anonymous sessions are refused."""

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> Any:
        return None


async def test_refused_identity_is_reported_by_the_runtime(tmp_path: Path) -> None:
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    port = free_port()
    server = Server(user_manager=NoAnonymous())
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/plc/")
    ns = await server.register_namespace("urn:loopline:test-plc")
    obj = await server.nodes.objects.add_object(ua.NodeId("M1", ns), "M1")
    await obj.add_variable(ua.NodeId("M1.Temp", ns), "Temp", 20.5)
    await server.start()
    (tmp_path / "master.toml").write_text(MASTER, encoding="utf-8")
    # a 1 s stale detector on every tag: a Bad run is a problem after 1 s, not 30
    extra = ('\n[simulator]\nenabled = false\n\n[[detectors]]\nid = "silence"\n'
             'kind = "stale"\ntags = ["*"]\nstale_after_s = 1.0\n')
    drv_cfg = {"kind": "opcua", "endpoint": f"opc.tcp://127.0.0.1:{port}/plc/",
               "timeout_s": 2.0, "reconnect_min_s": 0.05, "reconnect_max_s": 0.2}
    loaded = write_config(tmp_path, "plc", drv_cfg,
                          [{"name": "temp", "address": f"ns={ns};s=M1.Temp"}], extra,
                          top='master_data = "master.toml"', db=str(tmp_path / "run.db"))
    store = open_store(loaded.db_url)
    load_master_data(store, loaded, WallClock())
    rt = Runtime(loaded, store, RuntimeOptions(spawn_twin=False, ml=False, stats_every_s=60))
    stop = asyncio.Event()
    run = asyncio.create_task(rt.run(stop))
    try:
        await wait_until(lambda: bool(rt.drivers) and rt.drivers["plc"].gave_up is not None)

        def alarm() -> Any:
            with store.engine.connect() as c:
                return c.execute(select(Alarm.__table__).where(  # type: ignore[attr-defined]
                    Alarm.__table__.c.source.like("data_quality:%"))).first()  # type: ignore[attr-defined]

        await wait_until(lambda: alarm() is not None, timeout=30)
        assert "authentication rejected" in alarm().message
    finally:
        stop.set()
        summary = await asyncio.wait_for(run, 60)
        store.close()
        await server.stop()
    assert any("authentication rejected" in e for e in summary["errors"])
    d = summary["drivers"]["plc"]
    assert d["state"] == "down" and "authentication rejected" in d["last_error"]
    assert "authentication rejected" in d["gave_up"] and d["errors"] == 3
