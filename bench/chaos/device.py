"""A device that sends what devices send on a bad day: NaN, ±inf, a text where a number
belongs, numbers far out of range, timestamps a year ahead or behind, and a clock that
jumps back an hour. A real OPC UA server (asyncua) on loopback, the real runtime reading
it; what it stored is read back through ``loopline export samples``."""

from __future__ import annotations

import asyncio
import csv
import logging
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.chaos import Row, cli
from bench.chaos.procs import Headless, own_tracebacks
from runtime.twin import free_port

PIN = ("scrypt$16384$8$1$6f6c67616f6c67616f6c67616f6c6761$"
       "0a45176b672df80d6af8a86c5b76b5f417780aed03f184632229b08aa8fe5ec2")
NS_URI = "urn:loopline:chaos"


def _config(workdir: Path, port: int) -> Path:
    (workdir / "device-master.toml").write_text(
        '[[products]]\nid = "P-1"\nname = "Part"\nline = "L"\nlot_size = 10\n',
        encoding="utf-8")
    text = f"""
master_data = "{workdir / 'device-master.toml'}"
[site]
id = "chaos"
name = "Chaos plant"
[[areas]]
id = "hall"
name = "Hall"
[[lines]]
id = "L"
name = "Line"
area = "hall"
driver = "plc"
  [[lines.equipment]]
  id = "M1"
  name = "Machine 1"
  type = "generic"
  ideal_cycle_s = 10
  tags = [
    {{ name = "temp", address = "ns=2;s=M1.Temp", limits = {{ hi = 90.0, hihi = 100.0 }} }},
    {{ name = "count", address = "ns=2;s=M1.Count", data_type = "uint32", kind = "counter" }},
    {{ name = "speed", address = "ns=2;s=M1.Speed", data_type = "float64" }},
  ]
[drivers.plc]
kind = "opcua"
endpoint = "opc.tcp://127.0.0.1:{port}/plc/"
publishing_interval_ms = 50
sampling_interval_ms = 0
queue_size = 100
reconnect_min_s = 0.1
reconnect_max_s = 0.5
[[users]]
id = "olga"
name = "Olga"
roles = ["operator"]
pin_hash = "{PIN}"
[[detectors]]
id = "temp_limit"
kind = "limit"
tags = ["M1.temp"]
priority = "high"
[simulator]
enabled = false
"""
    p = workdir / "device.toml"
    p.write_text(text, encoding="utf-8")
    return p


# (name, tag, value, variant type, source time offset from now (s)) — what is expected
# of each is in EXPECT
def _cases(rng: random.Random) -> list[tuple[str, str, Any, str, float]]:
    return [
        ("nan", "Temp", float("nan"), "Double", 0),
        ("inf", "Temp", float("inf"), "Double", 0),
        ("-inf", "Speed", float("-inf"), "Double", 0),
        ("text_in_float", "Speed", "fast", "String", 0),
        ("float_in_uint", "Count", 12.5, "Double", 0),
        ("huge", "Temp", 1e308, "Double", 0),
        ("negative_count", "Count", -7, "Int64", 0),
        ("future", "Speed", 50.0 + rng.random(), "Double", 365 * 86400.0),
        ("past", "Temp", 40.0 + rng.random(), "Double", -365 * 86400.0),
    ]


EXPECT = {  # quality the store must show (0 Good, 1 Uncertain, 2 Bad), or a set
    "nan": {2}, "inf": {2}, "-inf": {2}, "text_in_float": {1, 2}, "float_in_uint": {1, 2},
    "huge": {0}, "negative_count": {1, 2}, "future": {1}, "past": {1},
}


async def _serve_and_send(port: int, run: Headless, rng: random.Random,
                          log: list[tuple[str, datetime]]) -> None:
    from asyncua import Server, ua

    logging.getLogger("asyncua").setLevel(logging.ERROR)
    s = Server()
    await s.init()
    s.set_endpoint(f"opc.tcp://127.0.0.1:{port}/plc/")
    ns = await s.register_namespace(NS_URI)
    assert ns == 2
    obj = await s.nodes.objects.add_object(ua.NodeId("M1", ns), "M1")
    nodes = {}
    for name, init, vt in (("Temp", 20.0, ua.VariantType.Double),
                           ("Count", 0, ua.VariantType.UInt32),
                           ("Speed", 10.0, ua.VariantType.Double)):
        nodes[name] = await obj.add_variable(ua.NodeId(f"M1.{name}", ns), name,
                                             ua.Variant(init, vt))
    await s.start()
    last_vt = {"Temp": "Double", "Count": "UInt32", "Speed": "Double"}
    try:
        async def put(tag: str, value: Any, vt: str, offset_s: float = 0.0) -> datetime:
            if vt != last_vt[tag]:  # asyncua refuses a change of type unless the node is
                # empty: empty it underneath, as a device with a broken type system would
                node = s.iserver.aspace._nodes[nodes[tag].nodeid]
                node.attributes[ua.AttributeIds.Value].value = None
                last_vt[tag] = vt
            ts = datetime.now(UTC) + timedelta(seconds=offset_s)
            # written past the server's type check, as a broken device would publish it
            await s.write_attribute_value(nodes[tag].nodeid, ua.DataValue(
                ua.Variant(value, getattr(ua.VariantType, vt)), SourceTimestamp=ts,
                ServerTimestamp=datetime.now(UTC)))
            await asyncio.sleep(0.3)
            return ts

        run.start("dev")
        while not any(e.get("kind") == "connection" and e.get("state") == "connected"
                      for e in run.poll_events() + run.events):
            if run.proc is not None and run.proc.poll() is not None:
                return
            await asyncio.sleep(0.1)
        for i in range(5):  # good values first
            await put("Temp", 20.0 + i, "Double")
            await put("Speed", 10.0 + i, "Double")
            await put("Count", i, "UInt32")
        for name, tag, value, vt, off in _cases(rng):
            log.append((name, await put(tag, value, vt, off)))
            await put(tag, 30.0 if tag != "Count" else 99, "Double" if tag != "Count"
                      else "UInt32")  # a normal value after each
        # the device clock jumps back an hour, and stays there
        for i in range(5):
            for tag in ("Temp", "Speed"):
                t = await put(tag, 25.0 + i, "Double", -3600.0)
                if i == 0 and tag == "Temp":
                    log.append(("clock_back", t))
        await asyncio.sleep(1.5)
    finally:
        await s.stop()


def bad_device(workdir: Path, seed: int, rounds: int = 1) -> Row:
    rng = random.Random(seed)
    row = Row("bad device values")
    notes: list[str] = []
    for r in range(rounds):
        port = free_port()
        cfg = _config(workdir, port)
        db = workdir / f"device-{r}.db"
        run = Headless(db, ["--no-sim", "--stats-every", "1", "--no-ml"], config=cfg)
        sent: list[tuple[str, datetime]] = []
        try:
            asyncio.run(_serve_and_send(port, run, rng, sent))
        finally:
            summary = run.stop()
        if own_tracebacks(run.stderr):
            row.fail(f"runtime stderr shows a traceback: {run.stderr[-400:]}")
        if summary is None:
            row.fail(f"no summary (stderr {run.stderr[-300:]})")
            continue
        ing = summary.get("detail", {}).get("ingest", {})
        if not ing.get("balanced") or ing.get("dropped", 0):
            row.fail(f"ingest not balanced: {ing}")
        out = workdir / f"device-{r}.csv"
        res = cli("export", "samples", "--format", "csv", "--out", str(out), "--config",
                  str(cfg), "--db", str(db), "--archive", "none")
        if res.returncode != 0:
            row.fail(f"export failed: {res.stderr.strip()}")
            continue
        with out.open(newline="") as f:
            rows = list(csv.DictReader(f))
        by_ts = {}
        for x in rows:
            by_ts.setdefault(x["ts"][:23], []).append(x)
        for name, ts in sent:
            row.trials += 1
            if name == "clock_back":
                jumped = [e for e in run.events if e.get("detector_id") == "clock_jump"
                          and e.get("kind") == "detection"]
                if not jumped:
                    row.fail("clock jumped back an hour: no clock_jump detection")
                alarm = [e for e in run.events if e.get("kind") == "alarm"
                         and "clock" in str(e.get("summary", "")).lower()]
                notes.append(f"clock_jump detections (raised + cleared) {len(jumped)}, "
                             f"{len(alarm)} alarm event(s)")
                continue
            key = ts.astimezone(UTC).isoformat()[:23].replace("+00:00", "")
            got = [x for k, xs in by_ts.items() if k.replace("T", " ")[:22] ==
                   key.replace("T", " ")[:22] for x in xs]
            if not got:
                row.data_lost += 1
                row.fail(f"{name}: not stored (sent at {ts.isoformat()})")
                continue
            q = {int(float(x["quality"])) for x in got}
            if not q <= EXPECT[name]:
                row.fail(f"{name}: stored with quality {sorted(q)}, expected one of "
                         f"{sorted(EXPECT[name])} ({got[0].get('value')!r}, "
                         f"{got[0].get('reason')!r})")
    row.note = (f"{row.trials - row.failures}/{row.trials} bad values stored with the "
                f"right quality and reason; " + "; ".join(notes))
    return row
