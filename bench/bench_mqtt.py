"""MQTT ingest: Sparkplug B values/s through the driver into the ingest pipeline, beside
a raw MQTT client receiving the same messages.

    python -m bench mqtt [--messages 20000] [--reps 3] [--json]

A real mosquitto on a free 127.0.0.1 port (generated config) and an edge node
(``sim.sparkplug.EdgeNode``) in its own process that publishes the default plant's
equipment tags (208 today) as 12 Sparkplug devices: NBIRTH + DBIRTHs (every metric, alias,
data type), then ``--messages`` DDATA as fast as paho sends them, round robin over
the devices, each with all of that device's numeric metrics by alias (~12 values).
Every phase gets a fresh publisher with the same seed, so both see the same bytes:

1. raw: a plain paho-mqtt 2.2 subscriber (no loopline code; MQTT 5 like the driver's
   default, its network loop in paho's thread) on the same filter that parses each
   payload with the protobuf and reads every metric's value: the floor any Sparkplug
   consumer pays in Python;
2. driver: ``MqttDriver`` (aiomqtt) on the default config's tags remapped to ``spb:``
   addresses, its sink only counting;
3. loopline: the same driver, its sink the real ``IngestPipeline`` (contextualizer, store
   writer thread, production tracker) on a fresh SQLite store with master data.

values/s = values received / time from the first message to the last one (both
phases count births and data alike); loopline also reports committed rows/s up to
the writer's drain, the Sparkplug sequence gaps it saw and the values missing.
Medians over ``--reps``, the order of the phases alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

GROUP, EDGE = "Bench", "GW1"
_SPB_TYPE = {"bool": 11, "int16": 2, "uint16": 6, "int32": 3, "uint32": 7, "int64": 4,
             "float32": 9, "float64": 10, "string": 12}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """mosquitto on loopback with a generated config; ends only the process it started."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = folder / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                        "persistence false\nuser root\nlog_type error\n"
                        "max_queued_messages 0\n")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        self.stop()
        raise SystemExit("bench mqtt: mosquitto did not start (make broker installs it)")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


# ---------------------------------------------------------------- the plant as devices


def plant_devices() -> tuple[Any, dict[str, dict[str, tuple[int, Any]]]]:
    """The default config's equipment tags, one Sparkplug device per equipment."""
    from core.config import load_config

    loaded = load_config(Path(__file__).resolve().parents[1] / "config.toml")
    devices: dict[str, dict[str, tuple[int, Any]]] = {}
    for t in loaded.tags:
        if t.equipment_id is None:
            continue
        dt = _SPB_TYPE[t.spec.data_type]
        init: Any = {"bool": False, "string": ""}.get(t.spec.data_type, 1)
        if t.name == "lot":
            init = 501 if t.spec.data_type != "string" else "L-00501"
        devices.setdefault(t.equipment_id, {})[t.name] = (dt, init)
    return loaded, devices


def publish(port: int, messages: int, seed: int) -> None:
    """The edge node process: births, then ``messages`` DDATA back to back."""
    from sim.sparkplug import EdgeNode

    _, devices = plant_devices()
    node = EdgeNode("127.0.0.1", port, GROUP, EDGE, devices)
    node.connect()
    rng = random.Random(seed)
    names = {d: [n for n, (dt, _) in ms.items() if dt not in (11, 12) and n not in
                 ("lot", "order", "recipe", "batch", "operator")]
             for d, ms in devices.items()}
    order = list(devices)
    ts = int(time.time() * 1000)
    for i in range(messages):
        d = order[i % len(order)]
        vals = {n: (round(rng.uniform(0, 100), 3) if devices[d][n][0] in (9, 10)
                    else i // len(order)) for n in names[d]}
        node.publish(d, vals, ts_ms=ts + i)
    print("done", flush=True)
    sys.stdin.read()  # stay connected until the bench has counted (no NDEATH mid-run)


def expected_values(devices: dict[str, dict[str, tuple[int, Any]]], messages: int) -> int:
    births = sum(len(ms) for ms in devices.values()) + 2  # + bdSeq, Node Control/Rebirth
    per = {d: len([n for n, (dt, _) in ms.items() if dt not in (11, 12) and n not in
                   ("lot", "order", "recipe", "batch", "operator")])
           for d, ms in devices.items()}
    order = list(devices)
    return births + sum(per[order[i % len(order)]] for i in range(messages))


def start_publisher(port: int, messages: int, seed: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.bench_mqtt", "--publisher", str(port),
         "--messages", str(messages), "--seed", str(seed)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[1])


def end_publisher(p: subprocess.Popen[str]) -> None:
    if p.poll() is None:
        p.terminate()
        p.wait(5)


class Counter:
    def __init__(self, target: int) -> None:
        self.target, self.n = target, 0
        self.t_first: float | None = None
        self.t_last = 0.0
        self.done = threading.Event()

    def add(self, k: int) -> None:
        now = time.perf_counter()
        if self.t_first is None:
            self.t_first = now
        self.n += k
        self.t_last = now
        if self.n >= self.target:
            self.done.set()

    def rate(self) -> float:
        dt = self.t_last - (self.t_first or self.t_last)
        return self.n / dt if dt > 0 else 0.0


# ---------------------------------------------------------------- phases


def run_raw(port: int, messages: int, seed: int, target: int, timeout: float) -> dict[str, Any]:
    import paho.mqtt.client as paho

    from sparkplug_b import Payload, get_value

    c = Counter(target)
    subscribed = threading.Event()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        p = Payload.FromString(msg.payload)
        k = 0
        for m in p.metrics:
            get_value(m, m.datatype)
            k += 1
        c.add(k)

    cl = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"raw-{port}-{seed}",
                     protocol=paho.MQTTv5)  # the driver's default protocol
    cl.on_message = on_message
    cl.on_subscribe = lambda *a: subscribed.set()
    cl.connect("127.0.0.1", port)
    cl.loop_start()
    cl.subscribe(f"spBv1.0/{GROUP}/+/{EDGE}/#", qos=1)
    subscribed.wait(10)
    pub = start_publisher(port, messages, seed)
    try:
        c.done.wait(timeout)
    finally:
        end_publisher(pub)
        cl.loop_stop()
        cl.disconnect()
    return {"values_per_s": c.rate(), "values": c.n, "missing": max(0, target - c.n)}


async def run_loopline(port: int, messages: int, seed: int, target: int, timeout: float,
                       workdir: Path, pipeline: bool = True) -> dict[str, Any]:
    from core.clock import WallClock
    from core.config.schema import MqttDriver as MqttCfg
    from core.ingest.pipeline import IngestPipeline
    from core.masterdata import load_master_data
    from core.samples import Quality
    from core.store.db import open_store
    from drivers.mqtt import MqttDriver

    loaded, _ = plant_devices()
    loaded.config.store.spill_dir = str(workdir / "spill")
    loaded.config.store.archive_dir = str(workdir / "history")
    tags = [replace(t, driver_id="mq", spec=t.spec.model_copy(
                update={"address": f"spb:{GROUP}/{EDGE}/{t.equipment_id}#{t.name}"}))
            for t in loaded.tags if t.equipment_id is not None]
    clock = WallClock()
    store = open_store(str(workdir / f"loopline-{seed}.db"))
    load_master_data(store, loaded, clock)
    pipe = IngestPipeline(loaded, store, clock).start()
    c = Counter(target - 2)  # bdSeq and Node Control/Rebirth map to no tag
    handle = pipe.handle if pipeline else (lambda batch: None)

    def sink(batch: list[Any]) -> None:
        handle(batch)
        c.add(sum(1 for s in batch if s.quality is not Quality.BAD))

    d = MqttDriver("mq", MqttCfg(kind="mqtt", host="127.0.0.1", port=port,
                                 rebirth_on_gap=True), tags)
    await d.start(sink)
    t0 = time.monotonic()
    while not d._connected and time.monotonic() - t0 < 10:
        await asyncio.sleep(0.01)
    pub = start_publisher(port, messages, seed)
    try:
        await asyncio.wait_for(asyncio.to_thread(c.done.wait, timeout), timeout + 5)
        recv_rate = c.rate()
        t_first = c.t_first or time.perf_counter()
        pipe.writer.drain(120)
        committed_s = time.perf_counter() - t_first
    finally:
        await d.stop()  # before the publisher goes: its will NDEATH is not part of the run
        end_publisher(pub)
    final = pipe.close()
    store.close()
    st = d.status()
    return {"values_per_s": recv_rate, "values": c.n, "missing": max(0, c.target - c.n),
            "committed_per_s": final["stored"] / committed_s if committed_s > 0 else 0.0,
            "stored": final["stored"], "dropped": final["dropped"],
            "seq_gaps": st["seq_gaps"], "rebirths": st["rebirths_requested"]}


def measure(messages: int, reps: int, timeout: float) -> dict[str, Any]:
    _, devices = plant_devices()
    target = expected_values(devices, messages)
    runs: dict[str, list[dict[str, Any]]] = {"raw": [], "driver": [], "loopline": []}
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work)
        try:
            for rep in range(reps):
                seed = 100 + rep
                order = list(runs)
                if rep % 2:
                    order.reverse()
                for phase in order:
                    if phase == "raw":
                        r = run_raw(broker.port, messages, seed, target, timeout)
                    else:
                        r = asyncio.run(run_loopline(broker.port, messages, seed, target,
                                                     timeout, work, phase == "loopline"))
                    runs[phase].append(r)
        finally:
            broker.stop()

    def med(phase: str, k: str) -> float:
        return statistics.median(r[k] for r in runs[phase])

    raw = med("raw", "values_per_s")
    return {
        "messages": messages, "values_per_run": target, "reps": reps,
        "tags": sum(len(m) for m in devices.values()), "devices": len(devices),
        "raw_values_per_s": raw,
        "driver_values_per_s": med("driver", "values_per_s"),
        "loopline_values_per_s": med("loopline", "values_per_s"),
        "loopline_committed_per_s": med("loopline", "committed_per_s"),
        "ratio": med("loopline", "values_per_s") / max(raw, 1e-9),
        "driver_ratio": med("driver", "values_per_s") / max(raw, 1e-9),
        "raw_missing": max(r["missing"] for r in runs["raw"]),
        "loopline_missing": max(r["missing"] for ph in ("driver", "loopline")
                                for r in runs[ph]),
        "seq_gaps": max(r["seq_gaps"] for ph in ("driver", "loopline") for r in runs[ph]),
        "writer_dropped": max(r["dropped"] for r in runs["loopline"]),
        "runs": runs,
    }


def print_table(r: dict[str, Any]) -> None:
    print(f"MQTT Sparkplug B ingest: {r['devices']} devices, {r['tags']} tags, "
          f"{r['messages']} DDATA + births = {r['values_per_run']} values per run, "
          f"median of {r['reps']}")
    print(f"{'path':46} {'values/s':>10} {'vs raw':>7}")
    raw = r["raw_values_per_s"]
    print(f"{'raw paho subscriber + protobuf decode':46} {raw:>10,.0f} {1.0:>7.2f}")
    for label, k in (("loopline driver alone (sink counts)", "driver_values_per_s"),
                     ("loopline driver -> ingest pipeline", "loopline_values_per_s"),
                     ("  rows committed to SQLite (to drain)", "loopline_committed_per_s")):
        print(f"{label:46} {r[k]:>10,.0f} {r[k] / max(raw, 1e-9):>7.2f}")
    print(f"missing values: raw {r['raw_missing']}, loopline {r['loopline_missing']}   "
          f"Sparkplug seq gaps: {r['seq_gaps']}   writer drops: {r['writer_dropped']}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench mqtt", description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=20_000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=100, help=argparse.SUPPRESS)
    p.add_argument("--publisher", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if a.publisher:
        publish(a.publisher, a.messages, a.seed)
        return 0
    r = measure(a.messages, a.reps, a.timeout)
    if a.json:
        print(json.dumps(r, indent=2))
    else:
        print_table(r)
    return 0 if r["loopline_missing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
