"""Closed loop: detection-to-recommendation latency p50/p99 through the full runtime on the twin.

    python -m bench loop_latency [--speed 600] [--seconds 110] [--inject bearing:A-LATHE1@0 ...]
                                 [--worn F [--stagger S]] [--seed 7] [--json]

    # the issue's condition, speed 1 (20 min; bearings 96 % worn, one machine every 90 s):
    python -m bench loop_latency --speed 1 --seconds 1200 --seed 42 --worn 0.96

Issue 7's figure. The real ``Runtime`` spawns the twin in its own process (default
plant, ``--inject`` faults, rule-based detection only: ml=False, approvals by policy)
and runs ``--seconds`` of wall time. What is timed, per detection that the engine
answers with a recommendation (``created``, and separately ``merged`` into an open
one):

    ready   = the wall time the runtime's driver sink received the sample that made
              the detector decide: the sample whose source time is the detection's
              time (for an on-delay that ran out with no new sample: the receipt of
              the first sample past the limit + the on-delay / speed);
    commit  = the wall time the ``RecommendationEvent`` was published, which the
              recommender does right after its transaction committed.

    latency = commit - ready: driver callback, stamping, the detection queue, the
              detectors, alarms, analysis, the rule (a re-plan runs the scheduler)
              and the store transaction. The configured on-delay (a deliberate
              confirmation wait) is not in it; onset -> commit (with it) is printed too.

The fault's onset in the twin's ground truth is hours of plant time before any of
this for wear faults (a bearing needs 8-16 plant hours to fail; ``decision_class_for``
recommends only for limits on wear signals, SPC shifts, unplanned downs, material
shortage and ML scores; stale/bad data never recommend), so the default runs the
twin at 600x with a bearing fault injected at t = 0 on all twelve machines: within
~100 s of wall time each crosses its vibration/temperature limit (work order) and then
fails (down_unplanned: re-plan). At 600x the runtime carries far more samples per wall
second than at 1x, so this is a harsher load than the issue's speed-1 condition; the
same options run at ``--speed 1`` when given hours (``--seconds``) — or minutes with
``--worn F``: each machine's bearing fault is injected F of its way to failure, one
machine every ``--stagger`` twin seconds, so limits are crossed while the run watches
(which machines cross depends on their load: starved machines do not vibrate).

Raw baseline, in the same run and under the same load (a thread, 10 per second): hand
a sample to a worker thread through a queue and INSERT + COMMIT one 3 kB row with
plain sqlite3 (WAL) in the same temp folder: the same path with loopline's engine
left out. Target: p99 <= 500 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import queue
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.twin_helpers import ROOT, cpu_s, rss_mb
from runtime.twin import free_port

TARGET_P99_MS = 500.0
EQUIPMENT = ("A-LATHE1", "A-MILL1", "A-GRIND1", "A-WASH1", "B-DRY1", "B-MOLD1", "B-MOLD2",
             "B-PACK1", "C-EXTR1", "C-OVEN1", "C-PRESS1", "C-PACK1")
RECEIPT_KEEP_S = 600.0  # wall seconds of sample receipts kept for the look-up


def pct(xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no data."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


class Receipts:
    """(tag, source time) -> wall time of the first receipt by the runtime's sink."""

    def __init__(self) -> None:
        self.at: dict[tuple[str, datetime], float] = {}
        self.lock = threading.Lock()
        self.samples = 0

    def note(self, samples: Sequence[Any]) -> None:
        t = time.perf_counter()
        with self.lock:
            at = self.at
            for s in samples:
                at.setdefault((s.tag_id, s.source_ts), t)
            self.samples += len(samples)
            if len(at) > 200_000:  # keep the newest minutes only
                for k in [k for k, v in at.items() if t - v > RECEIPT_KEEP_S]:
                    del at[k]

    def get(self, tag: str | None, ts: datetime) -> float | None:
        with self.lock:
            return self.at.get((tag or "", ts))


class RawPath(threading.Thread):
    """Queue hand-off to a worker thread + INSERT/COMMIT of a 3 kB row, 10 per second."""

    def __init__(self, db: Path) -> None:
        super().__init__(name="bench-raw-path", daemon=True)
        self.db = db
        self.stop_ev = threading.Event()
        self.ms: list[float] = []

    def run(self) -> None:
        q: queue.Queue[float | None] = queue.Queue()
        done: queue.Queue[float] = queue.Queue()
        con = sqlite3.connect(str(self.db), isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("CREATE TABLE rec (id INTEGER PRIMARY KEY, created REAL, evidence TEXT)")
        blob = "x" * 3000

        def worker() -> None:
            while (t := q.get()) is not None:
                con.execute("BEGIN")
                con.execute("INSERT INTO rec (created, evidence) VALUES (?, ?)", (t, blob))
                con.execute("COMMIT")
                done.put(time.perf_counter())

        w = threading.Thread(target=worker, name="bench-raw-writer", daemon=True)
        w.start()
        while not self.stop_ev.wait(0.1):
            t0 = time.perf_counter()
            q.put(t0)
            self.ms.append((done.get() - t0) * 1000)
        q.put(None)
        w.join(5)
        con.close()


async def run(speed: float, seconds: float, seed: int, inject: list[str],
              work: Path) -> dict[str, Any]:
    from core.clock import WallClock
    from core.config import load_config
    from core.events import RecommendationEvent
    from core.masterdata import ensure_master_data
    from core.store.db import open_store
    from runtime.host import Runtime, RuntimeOptions

    loaded = load_config(ROOT / "config.toml", db=str(work / "loop.db"))
    loaded.config.simulator.host = "127.0.0.1"
    store = open_store(loaded.db_url)
    ensure_master_data(store, loaded, WallClock())
    opts = RuntimeOptions(speed=speed, seed=seed, inject=inject, spawn_twin=True,
                          truth=work / "truth.jsonl", opcua_port=free_port(),
                          modbus_port=free_port(), ml=False, approve="policy",
                          stats_every_s=3600.0)
    rt = Runtime(loaded, store, opts)
    receipts = Receipts()
    committed: dict[str, float] = {}  # recommendation id -> wall time of its latest event
    rows: list[dict[str, Any]] = []

    def on_event(ev: Any) -> None:
        if isinstance(ev, RecommendationEvent) and ev.recommendation_id:
            committed[ev.recommendation_id] = time.perf_counter()

    rt.bus.subscribe(on_event)
    sink = rt._sink
    on_detection = rt._on_detection

    def timed_sink(samples: list[Any]) -> None:
        receipts.note(samples)
        sink(samples)

    def timed_detection(det: Any) -> Any:
        handed = time.perf_counter()
        res = on_detection(det)
        rid = getattr(res, "recommendation_id", None)
        outcome = getattr(res, "outcome", "")
        if rid and outcome in ("created", "merged", "superseded") and rid in committed:
            rows.append(row_for(det, outcome, rid, committed[rid], handed, receipts, speed))
        return res

    rt._sink = timed_sink  # type: ignore[method-assign]  # bound by start() to the drivers
    rt._on_detection = timed_detection  # type: ignore[method-assign]  # bound to DetectLoop
    raw = RawPath(work / "raw.db")
    cpu0 = cpu_s()
    t0 = time.perf_counter()
    try:
        await rt.start()
        raw.start()
        twin_pid = rt.twin.proc.pid
        twin_cpu0 = cpu_s(twin_pid)
        started = time.perf_counter()
        await asyncio.sleep(seconds)
        window = time.perf_counter() - started
        twin_cpu = 100 * (cpu_s(twin_pid) - twin_cpu0) / window
        stats = rt.stats()
    finally:
        raw.stop_ev.set()
        summary = await rt.stop()
        store.close()
    raw.join(10)
    cpu = 100 * (cpu_s() - cpu0) / (time.perf_counter() - t0)
    truth = []
    tp = work / "truth.jsonl"
    if tp.exists():
        for line in tp.read_text().splitlines():
            ev = json.loads(line)
            if ev.get("event") in ("fault_started", "failure"):
                truth.append(ev)
    return {"speed": speed, "seconds": seconds, "seed": seed, "inject": inject,
            "rows": rows, "raw_ms": raw.ms, "samples": receipts.samples,
            "samples_per_s": stats["samples"] / max(1e-9, seconds),
            "detections": stats.get("detections", {}),
            "detect_dropped": summary.get("detect_dropped", 0),
            "errors": summary.get("errors", []), "cpu_pct": cpu, "twin_cpu_pct": twin_cpu,
            "rss_peak_mb": rss_mb(key="VmHWM"), "truth_events": truth}


def row_for(det: Any, outcome: str, rid: str, commit: float, handed: float,
            receipts: Receipts, speed: float) -> dict[str, Any]:
    """One timed recommendation: when the deciding sample was received, when committed."""
    ts, onset = det.ts, det.onset
    held_s = (ts - onset).total_seconds()
    at_ts = receipts.get(det.tag_id, ts)
    at_onset = receipts.get(det.tag_id, onset)
    if at_ts is not None:
        ready, how = at_ts, "sample"
    elif at_onset is not None:  # never later than the hand-off (clocks may disagree)
        ready, how = min(at_onset + held_s / speed, handed), "onset+delay"
    else:
        ready, how = None, "unmatched"
    return {"recommendation_id": rid, "outcome": outcome, "kind": det.kind,
            "detector": det.detector_id, "problem": det.problem_key, "how": how,
            "latency_ms": (commit - ready) * 1000 if ready is not None else None,
            "engine_ms": (commit - handed) * 1000,
            "onset_to_commit_ms": (commit - at_onset) * 1000 if at_onset is not None else None,
            "on_delay_plant_s": held_s}


def _stats(lat: list[float], eng: list[float]) -> dict[str, Any]:
    nan = float("nan")
    return {"timed": len(lat), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
            "max_ms": max(lat) if lat else nan, "engine_p50_ms": pct(eng, 50),
            "engine_p99_ms": pct(eng, 99), "engine_max_ms": max(eng) if eng else nan}


def summarise(r: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, keep in (("created", ("created", "superseded")), ("merged", ("merged",)),
                       ("all", ("created", "superseded", "merged"))):
        sel = [x for x in r["rows"] if x["outcome"] in keep]
        lat = [x["latency_ms"] for x in sel if x["latency_ms"] is not None]
        eng = [x["engine_ms"] for x in sel]
        ons = [x["onset_to_commit_ms"] for x in sel if x["onset_to_commit_ms"] is not None]
        out[name] = {"n": len(sel), **_stats(lat, eng),
                     "onset_p50_ms": pct(ons, 50), "onset_p99_ms": pct(ons, 99),
                     "onset_max_ms": max(ons) if ons else float("nan")}
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for x in r["rows"]:
        if x["latency_ms"] is not None and x["outcome"] != "merged":
            by_kind.setdefault(f"{x['kind']} ({x['detector']})", []).append(x)
    out["by_kind"] = {k: _stats([x["latency_ms"] for x in v], [x["engine_ms"] for x in v])
                      for k, v in sorted(by_kind.items())}
    raw = r["raw_ms"]
    out["raw"] = {"timed": len(raw), "p50_ms": pct(raw, 50), "p99_ms": pct(raw, 99),
                  "max_ms": max(raw) if raw else float("nan")}
    out["how"] = {h: sum(1 for x in r["rows"] if x["how"] == h)
                  for h in ("sample", "onset+delay", "unmatched")}
    return out


def print_table(r: dict[str, Any], s: dict[str, Any]) -> None:
    print(f"loop latency: full runtime + twin at {r['speed']:g}x (own process), "
          f"{r['seconds']:g} s wall, seed {r['seed']}, rule-based detection (no ML); "
          f"{len(r['inject'])} injected fault(s); "
          f"{r['samples_per_s']:,.0f} samples/s into the runtime")
    print("latency = wall time from the runtime's receipt of the sample that decided the "
          "detection to the commit of the recommendation row")
    print(f"{'path':50} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}   "
          f"{'engine p50':>10} {'p99':>8} {'max':>8}")

    def row(name: str, d: dict[str, Any], pre: str = "", engine: bool = True) -> None:
        line = (f"{name:50} {d['timed']:>4} {d[pre + 'p50_ms']:>8.1f} {d[pre + 'p99_ms']:>8.1f} "
                f"{d[pre + 'max_ms']:>8.1f}")
        if engine and "engine_p50_ms" in d:
            line += (f"   {d['engine_p50_ms']:>10.1f} {d['engine_p99_ms']:>8.1f} "
                     f"{d['engine_max_ms']:>8.1f}")
        print(line)

    row("new recommendations (created/superseded)", s["created"])
    for k, d in s["by_kind"].items():
        row(f"  {k}", d)
    row("evidence merged into an open recommendation", s["merged"])
    row("created: onset sample -> commit (incl. on-delay)", s["created"], "onset_", False)
    row("raw: thread hand-off + sqlite3 INSERT/COMMIT 3 kB", s["raw"])
    print("engine = from the detection loop handing the detection to the engine to the "
          "commit (analysis, rule, transaction); the rest of latency is queueing before it")
    p99 = s["created"]["p99_ms"]
    raw50 = s["raw"]["p50_ms"]
    if s["created"]["timed"] and raw50 == raw50 and raw50 > 0:
        print(f"ratio created p50 / raw p50: {s['created']['p50_ms'] / raw50:.0f}x")
    print(f"matched by: {s['how']} (unmatched: detections decided on a timer, e.g. material);"
          f" detections {r['detections']}; detection batches "
          f"dropped {r['detect_dropped']}; loopline CPU {r['cpu_pct']:.0f} %, twin CPU "
          f"{r['twin_cpu_pct']:.0f} % of a core; peak RSS {r['rss_peak_mb']:.0f} MB")
    fails = [e for e in r["truth_events"] if e.get("event") == "failure"]
    print(f"ground truth: {sum(1 for e in r['truth_events'] if e.get('event') == 'fault_started')}"
          f" fault(s) started, {len(fails)} failure(s) within the run")
    if r["errors"]:
        print(f"runtime errors: {r['errors'][:3]}")
    if not s["created"]["timed"]:
        print("verdict: no recommendation was timed (run longer or inject faults)")
    else:
        ok = p99 <= TARGET_P99_MS
        print(f"verdict: p99 {p99:.0f} ms {'meets' if ok else 'misses'} the "
              f"{TARGET_P99_MS:.0f} ms target (n = {s['created']['timed']}: p99 is close to "
              "the maximum at this n)")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench loop_latency",
                                 description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--speed", type=float, default=600.0, help="twin speed (default 600)")
    ap.add_argument("--seconds", type=float, default=110.0, help="wall seconds to run")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--inject", action="append", default=None, metavar="KIND:EQUIPMENT@T",
                    help="faults for the twin (default: bearing on all 12 machines at 0)")
    ap.add_argument("--worn", type=float, default=None, metavar="F",
                    help="default faults start F (0..1) of their way to failure, staggered")
    ap.add_argument("--stagger", type=int, default=90, metavar="S",
                    help="twin seconds between the machines' --worn faults (default 90)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.seconds <= 0 or not 1 <= args.speed <= 3600:
        ap.error("--seconds must be positive, --speed within 1..3600")
    if args.worn is not None and not 0 <= args.worn < 1:
        ap.error("--worn must be within [0, 1)")
    if args.inject is not None:
        inject = args.inject
    elif args.worn is not None:
        inject = [f"bearing:{e}@{i * args.stagger}~{args.worn:g}"
                  for i, e in enumerate(EQUIPMENT)]
    else:
        inject = [f"bearing:{e}@0" for e in EQUIPMENT]
    for name in ("asyncua", "pymodbus"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        r = asyncio.run(run(args.speed, args.seconds, args.seed, inject, Path(tmp)))
    s = summarise(r)
    if args.json:
        print(json.dumps({**{k: v for k, v in r.items() if k != "raw_ms"}, "summary": s,
                          "raw_ms_median": statistics.median(r["raw_ms"]) if r["raw_ms"]
                          else None}, indent=2, default=str))
    else:
        print_table(r, s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
