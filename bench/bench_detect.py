"""Detection: DetectorSet samples/s vs a raw lookup loop; alarms/h per position vs ISA-18.2.

ContextSamples/s through DetectorSet beside a raw dict-lookup loop, and the alarm
rate per operator position over a simulated shift against the ISA-18.2 targets.

    python -m bench detect [--samples 200000] [--reps 5] [--shift-h 8] [--seed 7]
                           [--twin-h 24 [--faults-per-day 2]] [--json]

Throughput: the default plant's tags (config.toml) stream one value per tag per
scan, as the contextualizer hands them over (Good, a few Bad, values mostly inside
their limits with occasional excursions). Each repetition builds a fresh
DetectorSet (untimed) and times ``process_many`` over the same samples; the baseline
is a plain loop doing only the per-sample route lookup (``dict.get`` on the tag id),
i.e. the floor any router pays. The order of the two runs alternates per repetition;
medians and the ratio are reported.

Alarm rate: a synthetic shift (seeded) through DetectorSet → AlarmManager on a real
SQLite store with a FrozenClock advanced every scan: normal noise, a bearing
degradation crossing HI/HIHI, two unplanned downs with their downstream machines
starving, a comms drop with Bad data on line C, and SPC on every quality value.
Reported per position: annunciated alarms per hour (ISA-18.2: about 6/h is
"very likely acceptable", 12/h "manageable") and the share of the shift in flood
(target < 1 %). This is a synthetic stream, not the twin: the end-to-end benchmark
on the twin is the final word on alarm rates.

Twin (``--twin-h``): the plant twin's core stepped in-process (no servers, no
drivers): values reported by exception once per plant second, Bad while a machine's
comms are down, context from the twin; the same alarm figures, plus the twin's
ground truth (faults started, failures and whether a limit/SPC/ML detection on that
machine came before each failure).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.alarms import AlarmManager
from core.clock import FrozenClock
from core.config import load_config
from core.config.loader import LoadedConfig
from core.detect import DetectorSet
from core.samples import Context, ContextSample, Quality

T0 = datetime(2026, 1, 5, 6, 0, 0, tzinfo=UTC)
_BAD = object()  # marks a tag whose last report was Bad
REPO = Path(__file__).resolve().parent.parent
NORMAL = {"vibration_rms": (2.5, 0.3), "bearing_temp": (55.0, 1.5), "motor_current": (20.0, 2.0),
          "cycle_time": (40.0, 0.8), "quality_value": (20.0, 0.01), "zone_temp": (180.0, 1.0),
          "pressure": (5.0, 0.2), "flow": (40.0, 1.0)}


def _contexts(cfg: LoadedConfig) -> dict[str, Context]:
    return {eq.id: Context(equipment_id=eq.id, line_id=ln.id, order_id="PO-0001",
                           lot_id="L-00101", recipe_id="R-SH20", batch_id="B-0001",
                           shift_id="early", operator_id="olga")
            for ln, eq in cfg.equipment()}


def _value(rng: random.Random, name: str, kind: str) -> Any:
    if kind == "state":
        return 1
    if name in NORMAL:
        mu, sd = NORMAL[name]
        return rng.gauss(mu, sd)
    if kind in ("counter",):
        return rng.randrange(0, 10_000)
    if kind in ("context", "command", "clock"):
        return "x"
    return rng.gauss(10.0, 1.0)


def make_stream(cfg: LoadedConfig, n: int, seed: int) -> list[ContextSample]:
    """n samples, one per tag per 1 s scan; 0.5 % Bad, 0.2 % excursions above the limits."""
    rng = random.Random(seed)
    ctx = _contexts(cfg)
    plant = Context()
    tags = [(t.id, t.name, t.spec.kind, ctx.get(t.equipment_id or "", plant), t.spec.limits)
            for t in cfg.tags]
    out: list[ContextSample] = []
    scan = 0
    while len(out) < n:
        ts = T0 + timedelta(seconds=scan)
        for tag_id, name, kind, c, limits in tags:
            if len(out) >= n:
                break
            r = rng.random()
            if r < 0.005:
                out.append(ContextSample(tag_id, ts, None, Quality.BAD, "timeout", c))
                continue
            v = _value(rng, name, kind)
            if r < 0.007 and limits is not None and limits.hi is not None:
                v = limits.hi * 1.05
            out.append(ContextSample(tag_id, ts, v, Quality.GOOD, None, c))
        scan += 1
    return out


def raw_lookup(route: dict[str, Any], samples: Sequence[ContextSample]) -> int:
    get = route.get
    n = 0
    for cs in samples:
        hs = get(cs.tag_id)
        if hs is not None:
            n += 1
    return n


def measure_throughput(cfg: LoadedConfig, n: int, reps: int, seed: int) -> dict[str, Any]:
    samples = make_stream(cfg, n, seed)
    det_rates: list[float] = []
    raw_rates: list[float] = []
    detections: list[int] = []
    for rep in range(reps):
        ds = DetectorSet.from_config(cfg, FrozenClock(T0))
        route = ds._route  # the same table the DetectorSet uses

        def run_det(ds: DetectorSet = ds) -> None:
            t = time.perf_counter()
            got = ds.process_many(samples)
            det_rates.append(n / (time.perf_counter() - t))
            detections.append(len(got))

        def run_raw(route: dict[str, Any] = route) -> None:
            t = time.perf_counter()
            raw_lookup(route, samples)
            raw_rates.append(n / (time.perf_counter() - t))

        for fn in ((run_det, run_raw) if rep % 2 == 0 else (run_raw, run_det)):
            fn()
    det, raw = statistics.median(det_rates), statistics.median(raw_rates)
    return {"samples": n, "tags": len(cfg.tags), "reps": reps,
            "detect_samples_per_s": round(det), "raw_lookup_samples_per_s": round(raw),
            "detect_over_raw": round(det / raw, 4), "detections_per_rep": detections[0]}


# ---------------------------------------------------------------- simulated shift


def shift_stream(cfg: LoadedConfig, hours: float, seed: int, scan_s: int = 10
                 ) -> list[tuple[int, list[ContextSample]]]:
    """One scan every ``scan_s`` seconds of plant time, with the injected events."""
    rng = random.Random(seed)
    ctx = _contexts(cfg)
    plant = Context()
    tags = [(t.id, t.name, t.spec.kind, t.equipment_id, t.line_id,
             ctx.get(t.equipment_id or "", plant)) for t in cfg.tags]
    flows = {ln.id: [eq.id for eq in ln.equipment] for ln in cfg.config.lines}
    down = {"B-MOLD1": (2 * 3600, 2 * 3600 + 90 * 60), "C-EXTR1": (6 * 3600, 6 * 3600 + 40 * 60)}
    comms_drop = (5 * 3600, 5 * 3600 + 5 * 60)  # line C, all tags Bad
    bearing = ("A-LATHE1", 3 * 3600)  # temperature ramp from here: +12 °C/h
    quality_every = 40
    last_q: dict[str, float] = {}
    out = []
    for k in range(int(hours * 3600 / scan_s)):
        t = k * scan_s
        ts = T0 + timedelta(seconds=t)
        batch: list[ContextSample] = []
        for tag_id, name, kind, eq, line, c in tags:
            if line == "C" and comms_drop[0] <= t < comms_drop[1]:
                batch.append(ContextSample(tag_id, ts, None, Quality.BAD, "comms lost", c))
                continue
            if kind == "state":
                code = 1
                for deq, (a, b) in down.items():
                    if a <= t < b:
                        if eq == deq:
                            code = 4
                        elif line == deq[0] and eq in flows[line] and \
                                flows[line].index(eq) > flows[line].index(deq):
                            code = 5  # starved downstream
                batch.append(ContextSample(tag_id, ts, code, Quality.GOOD, None, c))
                continue
            if name == "quality_value":
                if t % quality_every == 0 or tag_id not in last_q:
                    last_q[tag_id] = rng.gauss(*NORMAL[name])
                batch.append(ContextSample(tag_id, ts, last_q[tag_id], Quality.GOOD, None, c))
                continue
            v = _value(rng, name, kind)
            if eq == bearing[0] and name == "bearing_temp" and t > bearing[1]:
                v += 12.0 * (t - bearing[1]) / 3600
            batch.append(ContextSample(tag_id, ts, v, Quality.GOOD, None, c))
        out.append((t, batch))
    return out


def measure_shift(cfg: LoadedConfig, hours: float, seed: int) -> dict[str, Any]:
    from core.store.db import open_store

    stream = shift_stream(cfg, hours, seed)
    clock = FrozenClock(T0)
    with tempfile.TemporaryDirectory() as d:
        store = open_store(str(Path(d) / "bench.db"))
        try:
            from core.masterdata import load_master_data

            load_master_data(store, cfg, clock)
            ds = DetectorSet.from_config(cfg, clock)
            mgr = AlarmManager.from_config(store, cfg, clock)
            ds.start(T0)
            by_kind: dict[str, int] = {}
            wall = time.perf_counter()
            for t, batch in stream:
                clock.set(T0 + timedelta(seconds=t))
                dets = ds.process_many(batch)
                dets += ds.tick()
                for dd in dets:
                    if not dd.cleared:
                        by_kind[dd.kind] = by_kind.get(dd.kind, 0) + 1
                mgr.on_detections(dets)
                mgr.tick()
            wall = time.perf_counter() - wall
            end = T0 + timedelta(hours=hours)
            positions = sorted({ln.id for ln in cfg.config.lines})
            per_pos = {}
            for p in positions:
                n = mgr.annunciated_count.get(p, 0)
                per_pos[p] = {"alarms": n, "per_hour": round(n / hours, 2),
                              "flood_pct": round(100 * mgr.flood_time(p, end) / (hours * 3600), 2),
                              "floods": mgr.floods.get(p, 0)}
        finally:
            store.close()
    return {"hours": hours, "scan_s": 10, "samples": sum(len(b) for _, b in stream),
            "wall_s": round(wall, 2), "detections_by_kind": by_kind, "positions": per_pos,
            "targets": {"per_hour": 6, "flood_pct": 1.0}}


def twin_tags(cfg: LoadedConfig, plant: Any) -> dict[str, list[tuple[str, str]]]:
    """Equipment -> (tag id, tag name) for the twin's machines."""
    tags: dict[str, list[tuple[str, str]]] = {}
    for t in cfg.tags:
        if t.equipment_id in plant.machines:
            tags.setdefault(t.equipment_id, []).append((t.id, t.name))
    return tags


def twin_batch(plant: Any, tags: dict[str, list[tuple[str, str]]], last: dict[str, Any]
               ) -> list[ContextSample]:
    """What a report-by-exception driver delivers for the twin's current second: changed
    values, and one Bad sample per tag when a machine's comms go down."""
    ts = plant.now()
    batch: list[ContextSample] = []
    for eq_id, m in plant.machines.items():
        snap = m.snapshot()
        ok = m.comms_ok(plant.t)
        ctx = Context(equipment_id=eq_id, line_id=m.line.id, order_id=snap["order"] or None,
                      lot_id=snap["lot"] or None, recipe_id=snap["recipe"] or None,
                      batch_id=snap["batch"] or None, operator_id=snap["operator"] or None)
        for tag_id, name in tags.get(eq_id, ()):
            if name not in snap:
                continue
            if not ok:
                if last.get(tag_id) is not _BAD:
                    batch.append(ContextSample(tag_id, ts, None, Quality.BAD, "comms lost",
                                               ctx))
                    last[tag_id] = _BAD
                continue
            v = snap[name]
            prev = last.get(tag_id, _BAD)
            if prev is _BAD or prev != v:
                last[tag_id] = v
                batch.append(ContextSample(tag_id, ts, v, Quality.GOOD, None, ctx))
    return batch


def measure_twin(cfg: LoadedConfig, hours: float, seed: int, faults_per_day: float,
                 scan_s: int = 1) -> dict[str, Any]:
    """The plant twin's core in-process (no servers): values reported by exception every
    ``scan_s`` plant seconds, Bad while a machine's comms are down, context from the twin."""
    from core.masterdata import load_master_data
    from core.store.db import open_store
    from sim.master import load_master
    from sim.plant import Plant
    from sim.truth import TruthLog

    truth = TruthLog(None)
    plant = Plant(cfg, load_master(cfg.master_data_path), seed=seed, start=T0, truth=truth,
                  random_faults_per_day=faults_per_day)
    clock = FrozenClock(T0)
    tags = twin_tags(cfg, plant)
    last: dict[str, Any] = {}
    dets_by_eq: dict[str, list[tuple[datetime, str]]] = {}
    by_kind: dict[str, int] = {}
    spc_rules: dict[str, int] = {}
    n_samples = 0
    det_s = 0.0
    with tempfile.TemporaryDirectory() as d:
        store = open_store(str(Path(d) / "bench.db"))
        try:
            load_master_data(store, cfg, clock)
            ds = DetectorSet.from_config(cfg, clock)
            mgr = AlarmManager.from_config(store, cfg, clock)
            ds.start(T0)
            wall = time.perf_counter()
            for step in range(int(hours * 3600)):
                plant.step()
                if step % scan_s:
                    continue
                ts = plant.now()
                clock.set(ts)
                batch = twin_batch(plant, tags, last)
                n_samples += len(batch)
                t1 = time.perf_counter()
                dets = ds.process_many(batch)
                dets += ds.tick(ts)
                det_s += time.perf_counter() - t1
                for dd in dets:
                    if not dd.cleared:
                        by_kind[dd.kind] = by_kind.get(dd.kind, 0) + 1
                        if dd.kind == "spc":
                            r = f"rule{dd.evidence.get('rule', '?')}"
                            spc_rules[r] = spc_rules.get(r, 0) + 1
                        if dd.equipment_id:
                            dets_by_eq.setdefault(dd.equipment_id, []).append((dd.onset,
                                                                                dd.kind))
                mgr.on_detections(dets)
                mgr.tick(ts)
            wall = time.perf_counter() - wall
            end = T0 + timedelta(hours=hours)
            per_pos = {}
            for p in sorted(plant.lines):
                n = mgr.annunciated_count.get(p, 0)
                per_pos[p] = {"alarms": n, "per_hour": round(n / hours, 2),
                              "flood_pct": round(100 * mgr.flood_time(p, end) /
                                                 (hours * 3600), 2),
                              "floods": mgr.floods.get(p, 0)}
        finally:
            store.close()
    faults: dict[str, int] = {}
    failures = []
    for ev in truth.events:
        if ev["event"] == "fault_started":
            faults[ev["kind"]] = faults.get(ev["kind"], 0) + 1
        elif ev["event"] == "failure":
            at = datetime.fromisoformat(ev["t"].replace("Z", "+00:00"))
            prior = [o for o, k in dets_by_eq.get(ev["equipment"], [])
                     if k == "limit" and o <= at]  # no ML models in this run
            failures.append({"equipment": ev["equipment"], "kind": ev["kind"],
                             "at": ev["t"], "detected_before": bool(prior),
                             "lead_min": round((at - min(prior)).total_seconds() / 60)
                             if prior else None})
    return {"hours": hours, "seed": seed, "faults_per_day": faults_per_day,
            "scan_s": scan_s, "samples": n_samples, "wall_s": round(wall, 1),
            "detect_samples_per_s": round(n_samples / det_s) if det_s else None,
            "detections_by_kind": by_kind, "spc_by_rule": dict(sorted(spc_rules.items())),
            "positions": per_pos,
            "truth": {"faults_started": faults, "failures": failures}}



def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench detect",
                                 description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--samples", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--shift-h", type=float, default=8.0, help="0 skips the alarm-rate part")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--twin-h", type=float, default=0.0,
                    help="also run the plant twin's core for this many hours (0: skip)")
    ap.add_argument("--faults-per-day", type=float, default=2.0)
    ap.add_argument("--config", default=str(REPO / "config.toml"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.samples < 1 or args.reps < 1 or args.shift_h < 0:
        ap.error("--samples and --reps must be positive, --shift-h not negative")
    cfg = load_config(args.config)
    report: dict[str, Any] = {"throughput": measure_throughput(cfg, args.samples, args.reps,
                                                               args.seed)}
    if args.shift_h > 0:
        report["shift"] = measure_shift(cfg, args.shift_h, args.seed)
    if args.twin_h > 0:
        report["twin"] = measure_twin(cfg, args.twin_h, args.seed, args.faults_per_day)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    tp = report["throughput"]
    print(f"detection throughput, {tp['tags']} tags, {tp['samples']} samples, median of "
          f"{tp['reps']}:")
    print(f"  DetectorSet.process_many  {tp['detect_samples_per_s']:>12,} samples/s")
    print(f"  raw dict-lookup loop      {tp['raw_lookup_samples_per_s']:>12,} samples/s")
    print(f"  ratio detect/raw          {tp['detect_over_raw']:>12.3f}   "
          f"({tp['detections_per_rep']} detections per run)")
    if "shift" in report:
        sh = report["shift"]
        print(f"\nalarm rate over a simulated {sh['hours']:g} h shift ({sh['samples']:,} "
              f"samples, {sh['wall_s']} s wall); ISA-18.2 targets ~6/h, flood < 1 %:")
        for p, v in sh["positions"].items():
            ok = "ok" if v["per_hour"] <= 6 and v["flood_pct"] < 1 else "ABOVE TARGET"
            print(f"  position {p}: {v['alarms']:>4} alarms  {v['per_hour']:>6.2f}/h  "
                  f"flood {v['flood_pct']:>5.2f} % ({v['floods']} floods)  {ok}")
        print(f"  detections by kind: {sh['detections_by_kind']}")
    if "twin" in report:
        tw = report["twin"]
        print(f"\nplant twin core, {tw['hours']:g} h, seed {tw['seed']}, "
              f"{tw['faults_per_day']:g} random faults/day ({tw['samples']:,} samples by "
              f"exception, {tw['wall_s']} s wall, detection "
              f"{tw['detect_samples_per_s'] or 0:,} samples/s):")
        for p, v in tw["positions"].items():
            ok = "ok" if v["per_hour"] <= 6 and v["flood_pct"] < 1 else "ABOVE TARGET"
            print(f"  position {p}: {v['alarms']:>4} alarms  {v['per_hour']:>6.2f}/h  "
                  f"flood {v['flood_pct']:>5.2f} % ({v['floods']} floods)  {ok}")
        print(f"  detections by kind: {tw['detections_by_kind']}")
        print(f"  SPC detections by Nelson rule: {tw['spc_by_rule']}")
        print(f"  ground truth: faults started {tw['truth']['faults_started']}")
        for f in tw["truth"]["failures"]:
            seen = (f"limit detection {f['lead_min']} min before" if f["detected_before"]
                    else "no limit detection before it")
            print(f"    failure {f['kind']} on {f['equipment']} at {f['at']}: {seen}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
