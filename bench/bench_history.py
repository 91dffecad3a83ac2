"""History benchmark: a month of 1 Hz history, reads beside a raw polars scan, bytes per sample.

    python -m bench history [--days 30] [--tags 500] [--hot-hours 24] [--reps 20]
                            [--dir PATH] [--keep] [--json]
                            [--db postgresql+psycopg://… | --pg] [--pg-tags 100]

Generation (timed, vectorised: numpy columns written as Parquet with pyarrow, chunks
encoded straight into SQLite): ``--tags`` tags on the shipped plant's 12 machines
(state, counters, setpoints, cycle time and quantised sensor signals as the twin
publishes them, named like the twin's where the ML features expect them), one sample
per tag per second, ``--days`` days into the Parquet archive in the layout
``core.ingest.archive`` writes, then ``--hot-hours`` in the store as per-tag hourly
chunks; context intervals per machine (a lot every 2 h, three shifts a day), state
intervals (every 5-60 min) and per-minute production counts for the whole span.

Reads, each beside a raw baseline measured in the same run with no loopline code:

- one tag's last 8 h (hot store), p95 over ``--reps`` random tags; and one tag's
  8 h inside the archive. Baseline: ``pl.scan_parquet`` of the archive files, filtered
  to one tag's 8 h (what a plain Parquet historian read costs);
- one tag's whole span as 1-minute min/mean/max (``core.history.aggregate``).
  Baseline: scan + filter + ``group_by_dynamic`` of the same files;
- OEE by shift over the whole span (``core.oee.by_shift``, median of 3 and the first
  call). Baseline: sqlite3 fetch of
  the same state intervals and counts (the I/O floor of any OEE over them);
- the ML feature window: 12 machines x 18 h of their ML signals through
  ``ml.store_source.StoreSource.history`` (context-stamped, contract frame; median of 3
  and the first call, which pays for cold pages and polars' first plans).
  Baseline: sqlite3 fetch of the same chunk blobs (the store's I/O floor).

Disk: bytes per sample in the archive (all twin-like signals, and per kind), in the
SQLite hot store, and for one noisy 1 Hz float64 signal in both.

With ``--db`` (a PostgreSQL URL; a fresh schema is made in it) or ``--pg`` (a throwaway
cluster for the run) the same reads run with the hot window in PostgreSQL's day
partitions (``--pg-tags`` tags; the same archive files), beside raw psycopg fetches
(``bench/pg_reads.py``).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from core.store.chunks import HOUR_US, encode, to_us

END = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # the generated history ends here ("now")
S_US = 1_000_000
DAY_S = 86_400
KINDS = ("vibration_rms", "bearing_temp", "motor_current", "state", "good_count",
         "scrap_count", "feed_sp", "speed_sp", "quality_value", "cycle_time")
ML_SIGNALS = ("vibration_rms", "bearing_temp", "motor_current")
MACHINES = ("A-LATHE1", "A-MILL1", "A-GRIND1", "A-WASH1", "B-MOLD1", "B-MOLD2", "B-DRY1",
            "B-PACK1", "C-EXTR1", "C-OVEN1", "C-PACK1", "C-PRESS1")


def plant_tags(n: int) -> list[tuple[str, str, str]]:
    """(tag id, machine, kind): kinds round-robin per machine, the first of each kind
    named as the twin names it, later ones numbered."""
    out, seen = [], set()
    for i in range(n):
        eq, kind = MACHINES[i % len(MACHINES)], KINDS[(i // len(MACHINES)) % len(KINDS)]
        name = kind if (eq, kind) not in seen else f"{kind}_{i // len(MACHINES):03d}"
        seen.add((eq, kind))
        out.append((f"{eq}.{name}", eq, kind))
    return out


def signal(kind: str, n: int, seed: int) -> np.ndarray:
    """n seconds of one tag, as the twin shapes it (quantised like its snapshot)."""
    rng = np.random.default_rng(seed)
    if kind == "state":
        return np.repeat(rng.choice([1, 1, 1, 2, 3, 5], n // 600 + 1), 600)[:n].astype(float)
    if kind in ("good_count", "scrap_count"):
        p = 0.05 if kind == "good_count" else 0.002
        return np.cumsum(rng.random(n) < p).astype(float)
    if kind in ("feed_sp", "speed_sp"):
        base = 0.2 if kind == "feed_sp" else 1200.0
        return np.repeat(base * (1 + 0.05 * rng.integers(-2, 3, n // 14_400 + 1)),
                         14_400)[:n]
    if kind == "cycle_time":
        return np.repeat(np.round(30 + 3 * rng.random(n // 900 + 1), 2), 900)[:n]
    if kind == "vibration_rms":
        return np.round(2.0 + 0.3 * rng.standard_normal(n), 4)
    if kind == "bearing_temp":
        walk = np.cumsum(rng.standard_normal(n)) * 0.002
        return np.round(60 + walk + 0.05 * rng.standard_normal(n), 3)
    if kind == "motor_current":
        return np.round(40 + 2 * rng.standard_normal(n), 2)
    return np.round(20 + 0.01 * rng.standard_normal(n), 5)  # quality_value


def _arrow(tag: np.ndarray, ts: np.ndarray, value: np.ndarray) -> Any:
    import pyarrow as pa

    n = len(ts)
    return pa.table({
        "tag": pa.array(tag, pa.int32()),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "value": pa.array(value, pa.float64()),
        "quality": pa.array(np.zeros(n, np.int8), pa.int8()),
        "reason": pa.nulls(n, pa.int32()),
        "chunk": pa.array(np.zeros(n, np.int64), pa.int64()),
    })


def write_day(path: Path, nums: list[int], kinds: list[str], day0: int, seed: int) -> int:
    """One archive file: these tags' day, sorted by (tag, ts), the archiver's encodings."""
    from core.ingest.archive import write_table

    ts1 = day0 + np.arange(DAY_S, dtype=np.int64) * S_US
    tag = np.repeat(np.array(nums, np.int32), DAY_S)
    ts = np.tile(ts1, len(nums))
    value = np.concatenate([signal(k, DAY_S, seed * 100_003 + n) for n, k in zip(nums, kinds,
                                                                                 strict=True)])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_table(_arrow(tag, ts, value), path)
    return len(ts)


def _context(con: sqlite3.Connection, start: int, end: int) -> int:
    """Intervals per machine: a lot every 2 h (staggered), shifts at 06/14/22 UTC."""
    rows = []
    for m, eq in enumerate(MACHINES):
        cuts = set(range(start - start % (8 * 3600 * S_US) - 2 * 3600 * S_US, end,
                         8 * 3600 * S_US))  # shift starts at 22, 06, 14
        cuts |= set(range(start + m * 600 * S_US, end, 2 * 3600 * S_US))
        cuts = sorted(c for c in cuts if c < end)
        for i, c in enumerate(cuts):
            hour = (c // (3600 * S_US)) % 24
            shift = "early" if 6 <= hour < 14 else "late" if 14 <= hour < 22 else "night"
            lot = f"L-{(c - start) // (2 * 3600 * S_US) + 1000 * m:05d}"
            nxt = cuts[i + 1] if i + 1 < len(cuts) else None
            rows.append((eq, eq, eq[0], f"PO-{m:04d}", lot, "R-1", "B-1", shift, "olga",
                         c, nxt))
    con.executemany("INSERT INTO context_interval (scope, equipment_id, line_id, order_id, "
                    "lot_id, recipe_id, batch_id, shift_id, operator_id, valid_from, valid_to) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def _production(con: sqlite3.Connection, start: datetime, end: datetime, seed: int) -> int:
    """State intervals every 5-60 min and one production_count row per machine minute."""
    from core.ingest.rows import ts_text

    rng = random.Random(seed)
    states, counts = [], []
    for eq in MACHINES:
        t = start
        while t < end:
            nxt = min(end, t + timedelta(minutes=rng.randint(5, 60)))
            st = rng.choice(["running"] * 6 + ["idle", "down_unplanned", "setup"])
            states.append((eq, st, "", ts_text(t), ts_text(nxt) if nxt < end else None))
            t = nxt
        minutes = int((end - start).total_seconds() // 60)
        for k in range(minutes):
            counts.append((eq, eq[0], ts_text(start + timedelta(minutes=k)),
                           rng.randint(0, 3), int(rng.random() < 0.05)))
    con.executemany("INSERT INTO equipment_state_interval (equipment_id, state, reason_code, "
                    "start, \"end\") VALUES (?, ?, ?, ?, ?)", states)
    con.executemany("INSERT INTO production_count (equipment_id, line_id, ts, good, scrap) "
                    "VALUES (?, ?, ?, ?, ?)", counts)
    return len(states) + len(counts)


def generate(root: Path, days: int, n_tags: int, hot_h: int, seed: int = 5) -> dict[str, Any]:
    from core.clock import FrozenClock
    from core.config import load_config
    from core.masterdata import load_master_data
    from core.production import ensure_schema
    from core.store.db import open_store

    repo = Path(__file__).resolve().parents[1]
    db, arch = root / "loopline.db", root / "history"
    t0 = time.perf_counter()
    store = open_store(str(db))
    load_master_data(store, load_config(repo / "config.toml"), FrozenClock(END))
    ensure_schema(store)
    store.close()
    tags = plant_tags(n_tags)
    con = sqlite3.connect(str(db), isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("BEGIN")
    con.executemany("INSERT INTO sample_tag (num, tag_id, scope) VALUES (?, ?, ?)",
                    [(i + 1, t, eq) for i, (t, eq, _) in enumerate(tags)])
    hot_start = to_us(END) - hot_h * 3600 * S_US
    arch_start = hot_start - days * DAY_S * S_US
    _context(con, arch_start, to_us(END))
    _production(con, datetime.fromtimestamp(arch_start / S_US, UTC), END, seed)
    con.execute("COMMIT")
    t_meta = time.perf_counter() - t0
    archived = 0
    per_file = 50  # tags per file: ~4.3 M rows, a few hundred MB of columns at a time
    for d in range(days):
        day0 = arch_start + d * DAY_S * S_US
        date = datetime.fromtimestamp(day0 / S_US, UTC).date()
        for k in range(0, n_tags, per_file):
            nums = list(range(k + 1, min(k + per_file, n_tags) + 1))
            archived += write_day(arch / f"date={date}" / f"part-gen-{k:05d}.parquet", nums,
                                  [tags[n - 1][2] for n in nums], day0, seed + d)
    t_arch = time.perf_counter() - t0 - t_meta
    hot = 0
    con.execute("BEGIN")
    for n, (_, _, kind) in enumerate(tags, 1):
        v = signal(kind, hot_h * 3600, seed * 7 + n)
        for h in range(hot_h):
            ts = hot_start + h * HOUR_US + np.arange(3600, dtype=np.int64) * S_US
            part = v[h * 3600:(h + 1) * 3600]
            con.execute("INSERT INTO sample_chunk (tag, t0, t1, n, data) VALUES (?, ?, ?, ?, ?)",
                        (n, int(ts[0]), int(ts[-1]), 3600,
                         encode(ts, part, np.zeros(3600, np.uint8), np.full(3600, -1, np.int32))))
            hot += 3600
    con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    t_hot = time.perf_counter() - t0 - t_meta - t_arch
    return {"archived": archived, "hot": hot, "tags": tags, "db": db, "archive": arch,
            "gen_s": {"metadata": t_meta, "archive": t_arch, "hot": t_hot,
                      "total": time.perf_counter() - t0}}


def _timed(f: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = f()
    return time.perf_counter() - t, out


def _p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


def _files(arch: Path, lo: datetime, hi: datetime) -> list[str]:
    from core.history import _dates

    return _dates(arch, "date=*", lo, hi)


def measure(gen: dict[str, Any], days: int, hot_h: int, reps: int,
            seed: int = 3) -> dict[str, Any]:
    from core import history as h
    from core.oee import by_shift
    from core.store.db import open_store
    from ml.store_source import StoreSource

    rng = random.Random(seed)
    store = open_store(str(gen["db"]))
    arch, tags = gen["archive"], gen["tags"]
    num = {t: i + 1 for i, (t, _, _) in enumerate(tags)}
    signals = [t for t, _, k in tags if k in ("vibration_rms", "bearing_temp",
                                               "motor_current")]
    out: dict[str, Any] = {}
    start = END - timedelta(hours=hot_h) - timedelta(days=days)
    try:
        # one tag's last 8 h (hot), one tag's 8 h in the archive, raw scan of the archive
        hot_s, arch_s, raw_s = [], [], []
        a_hi = END - timedelta(hours=hot_h) - timedelta(days=max(days // 2, 0))
        a_lo = a_hi - timedelta(hours=8)
        for _ in range(reps):
            tag = rng.choice(signals)
            dt, f = _timed(lambda tag=tag: h.history(store, arch, [tag],
                                                      END - timedelta(hours=8), END))
            hot_s.append(dt)
            assert f.height == 8 * 3600 and f["lot_id"].null_count() == 0, f.height
            if days:
                dt, f = _timed(lambda tag=tag: h.history(store, arch, [tag], a_lo, a_hi))
                arch_s.append(dt)
                assert f.height == 8 * 3600, f.height
                files = _files(arch, a_lo, a_hi)
                dt, g = _timed(lambda tag=tag, files=files: pl.scan_parquet(files).filter(
                    (pl.col("tag") == num[tag]) & pl.col("ts").is_between(
                        a_lo, a_hi, closed="left")).collect())
                raw_s.append(dt)
                assert g.height == 8 * 3600
        out["tag_8h"] = {"hot_p95_s": _p95(hot_s), "hot_median_s": statistics.median(hot_s),
                         "archive_p95_s": _p95(arch_s) if arch_s else None,
                         "raw_scan_p95_s": _p95(raw_s) if raw_s else None}
        # one tag's whole span as 1-minute min/mean/max
        tag = signals[0]
        dt, f = _timed(lambda: h.aggregate(store, arch, [tag], start, END, "1m"))
        files = _files(arch, start, END)
        rt, g = _timed(lambda: pl.scan_parquet(files).filter(pl.col("tag") == num[tag])
                       .sort("ts").group_by_dynamic("ts", every="1m")
                       .agg(pl.col("value").min().alias("min"),
                            pl.col("value").mean().alias("mean"),
                            pl.col("value").max().alias("max")).collect())
        out["tag_span_1m"] = {"s": dt, "minutes": f.height, "raw_archive_scan_s": rt,
                              "raw_minutes": g.height}
        # OEE by shift over the span
        runs = [_timed(lambda: by_shift(store, start, END, END)) for _ in range(3)]
        oee, first, dt = runs[0][1], runs[0][0], statistics.median(r[0] for r in runs)
        con = sqlite3.connect(str(gen["db"]))
        rt, _ = _timed(lambda: (con.execute("SELECT equipment_id, state, start, \"end\" FROM "
                                            "equipment_state_interval").fetchall(),
                                con.execute("SELECT equipment_id, ts, good, scrap, shift_id, "
                                            "line_id FROM production_count").fetchall()))
        out["oee_by_shift"] = {"s": dt, "first_s": first, "rows": len(oee), "raw_fetch_s": rt}
        # ML window: 12 machines x 18 h of their ML signals
        ml_tags = [f"{eq}.{s}" for eq in MACHINES for s in ML_SIGNALS if f"{eq}.{s}" in num]
        src = StoreSource(store, arch, ml_tags)
        runs = [_timed(lambda: src.history(END - timedelta(hours=18), END)) for _ in range(3)]
        f = runs[0][1]
        first, dt = runs[0][0], statistics.median(r[0] for r in runs)
        nums = [num[t] for t in ml_tags]
        marks = ", ".join("?" for _ in nums)
        lo18 = to_us(END - timedelta(hours=18))
        rt, _ = _timed(lambda: con.execute(
            f"SELECT tag, t0, data FROM sample_chunk WHERE tag IN ({marks}) AND t1 >= ?",
            (*nums, lo18)).fetchall())
        con.close()
        out["ml_window"] = {"s": dt, "first_s": first, "tags": len(ml_tags), "rows": f.height,
                            "raw_chunk_fetch_s": rt}
    finally:
        store.close()
    return out


def disk(gen: dict[str, Any], root: Path) -> dict[str, Any]:
    """Bytes per sample: archive (all, by kind), hot store, a noisy 1 Hz signal."""
    from core.ingest.archive import write_table
    from core.ingest.compaction import chunk_rows

    arch_bytes = sum(p.stat().st_size for p in gen["archive"].rglob("*.parquet"))
    db = gen["db"]
    con = sqlite3.connect(str(db))
    chunk_bytes = con.execute("SELECT sum(length(data)) FROM sample_chunk").fetchone()[0] or 0
    con.close()
    by_kind = {}
    day0 = to_us(END)
    for kind in KINDS:
        p = root / "kind" / f"{kind}.parquet"
        n = write_day(p, [1], [kind], day0, 99)
        by_kind[kind] = p.stat().st_size / n
    noisy = np.random.default_rng(1).standard_normal(DAY_S)
    ts = day0 + np.arange(DAY_S, dtype=np.int64) * S_US
    p = root / "kind" / "noisy.parquet"
    write_table(_arrow(np.ones(DAY_S, np.int32), ts, noisy), p)
    rows = chunk_rows(np.ones(DAY_S, np.int64), ts, noisy, np.zeros(DAY_S, np.uint8),
                      np.full(DAY_S, -1, np.int32))
    noisy_sqlite = sum(len(r[4]) + 40 for r in rows) / DAY_S  # + ~40 bytes of row and index
    return {"archive_bytes_per_sample": arch_bytes / max(gen["archived"], 1),
            "archive_gb": arch_bytes / 1e9,
            "hot_file_bytes_per_sample": db.stat().st_size / max(gen["hot"], 1),
            "hot_chunk_bytes_per_sample": chunk_bytes / max(gen["hot"], 1),
            "archive_by_kind": by_kind,
            "noisy_1hz": {"parquet": p.stat().st_size / DAY_S, "sqlite_chunks": noisy_sqlite}}


def print_table(r: dict[str, Any]) -> None:
    g = r["generation"]
    print(f"history: {r['tags']} tags x {r['days']} days archived + {r['hot_hours']} h hot at "
          f"1 Hz = {r['archived'] + r['hot']:,} samples ({r['archived']:,} archived, "
          f"{r['hot']:,} hot)")
    print(f"generation: {g['total']:.1f} s (archive {g['archive']:.1f} s = "
          f"{r['archived'] / max(g['archive'], 1e-9):,.0f} samples/s, hot {g['hot']:.1f} s, "
          f"metadata {g['metadata']:.1f} s)")
    t, a, o, m = r["tag_8h"], r["tag_span_1m"], r["oee_by_shift"], r["ml_window"]

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x * 1000:.1f} ms"

    print(f"{'read':44} {'loopline':>12} {'raw baseline':>14}  target")
    print(f"{'one tag, last 8 h (hot), p95':44} {fmt(t['hot_p95_s']):>12} "
          f"{fmt(t['raw_scan_p95_s']):>14}  < 100 ms")
    print(f"{'one tag, 8 h in the archive, p95':44} {fmt(t['archive_p95_s']):>12} "
          f"{fmt(t['raw_scan_p95_s']):>14}")
    print(f"{'one tag, whole span, 1-min min/mean/max':44} {fmt(a['s']):>12} "
          f"{fmt(a['raw_archive_scan_s']):>14}  < 1 s  ({a['minutes']:,} minutes)")
    print(f"{'OEE by shift, whole span (median of 3)':44} {fmt(o['s']):>12} "
          f"{fmt(o['raw_fetch_s']):>14}  < 1 s  ({o['rows']:,} rows, first call "
          f"{fmt(o['first_s'])}; raw = sqlite3 fetch of its rows)")
    print(f"{'ML window, 12 machines x 18 h (median of 3)':44} {fmt(m['s']):>12} "
          f"{fmt(m['raw_chunk_fetch_s']):>14}  < 1 s  ({m['rows']:,} samples of {m['tags']} "
          f"tags, first call {fmt(m['first_s'])}; raw = sqlite3 fetch of the chunks)")
    d = r["disk"]
    print(f"disk: archive {d['archive_bytes_per_sample']:.2f} bytes/sample "
          f"({d['archive_gb']:.2f} GB), hot SQLite {d['hot_file_bytes_per_sample']:.2f} "
          f"bytes/sample (chunk blobs {d['hot_chunk_bytes_per_sample']:.2f})")
    print("archive bytes/sample by kind: " + ", ".join(
        f"{k} {v:.2f}" for k, v in d["archive_by_kind"].items()))
    print(f"noisy 1 Hz float64 signal: Parquet {d['noisy_1hz']['parquet']:.2f}, SQLite chunks "
          f"{d['noisy_1hz']['sqlite_chunks']:.2f} bytes/sample")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench history",
                                 description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--tags", type=int, default=500)
    ap.add_argument("--hot-hours", type=int, default=24)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--db", help="also PostgreSQL: a postgresql+psycopg:// URL")
    ap.add_argument("--pg", action="store_true",
                    help="also PostgreSQL, on a throwaway cluster started for the run")
    ap.add_argument("--pg-tags", type=int, default=100,
                    help="tags in PostgreSQL's hot window (default 100)")
    args = ap.parse_args(argv)
    if args.db and not args.db.startswith("postgresql"):
        ap.error("--db takes a PostgreSQL URL (postgresql+psycopg://user@host/db)")
    if (args.db or args.pg) and not 36 <= args.pg_tags <= args.tags:
        ap.error("--pg-tags must be between 36 (the ML window's signals) and --tags")
    if args.days < 0 or args.tags < len(MACHINES) or not 18 <= args.hot_hours <= 24 * 7:
        ap.error(f"--days >= 0, --tags >= {len(MACHINES)}, 18 <= --hot-hours <= 168")
    root = Path(args.dir or tempfile.mkdtemp(prefix="bench-history-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        gen = generate(root, args.days, args.tags, args.hot_hours)
        report: dict[str, Any] = {"tags": args.tags, "days": args.days,
                                  "hot_hours": args.hot_hours, "archived": gen["archived"],
                                  "hot": gen["hot"], "generation": gen["gen_s"]}
        report.update(measure(gen, args.days, args.hot_hours, args.reps))
        report["disk"] = disk(gen, root)
        if args.db or args.pg:
            report["postgresql"] = _postgres(args, gen["archive"])
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print_table(report)
        if "postgresql" in report:
            from bench.pg_reads import print_pg

            print_pg(report["postgresql"], args.hot_hours)
    return 0


def _postgres(args: argparse.Namespace, arch: Path) -> dict[str, Any]:
    from bench.pg_reads import run
    from bench.pgserver import throwaway_cluster

    if args.db:
        return run(args.db, arch, args.pg_tags, args.days, args.hot_hours, args.reps)
    with throwaway_cluster(durable=True, settings={"shared_buffers": "256MB"}) as cluster:
        return run(cluster.new_database(), arch, args.pg_tags, args.days, args.hot_hours,
                   args.reps)


if __name__ == "__main__":
    sys.exit(main())
