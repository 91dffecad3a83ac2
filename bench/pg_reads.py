"""The PostgreSQL half of ``python -m bench history`` (``--db postgresql://…`` or ``--pg``).

The same plant history as the SQLite run, with the hot window in PostgreSQL's day
partitions instead of SQLite chunks: ``--pg-tags`` tags (the first ones of the SQLite
run's tag list, so the ML window's 36 signals are among them) x ``--hot-hours`` at
1 Hz, the same values; the archive is the SQLite run's Parquet files (the same layout
``core.ingest.pg_archive`` writes). Context intervals, state intervals and per-minute
counts as in the SQLite run. Bulk load as a plant would backfill a day: each day's
partition is made as a plain table, filled by COPY, then attached (PostgreSQL builds
its (tag, ts) index once, sorted, instead of row by row).

Reads through the same ``core.history``/``core.oee``/``ml.store_source`` calls, each
beside a raw psycopg fetch of the same rows (the server's I/O floor).
"""

from __future__ import annotations

import io
import random
import re
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bench.pg_store import dsn_of, fresh_schema
from core.store.chunks import to_us

SCHEMA = "bench_history"
_INSERT = re.compile(r"INSERT INTO (\w+) \(([^)]*)\) VALUES", re.S)


class _CopyCon:
    """``executemany`` of the SQLite bench's INSERTs as COPY (text) on psycopg."""

    def __init__(self, con: Any) -> None:
        self.con = con

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        m = _INSERT.match(sql)
        assert m is not None, sql
        with self.con.cursor() as cur, cur.copy(f"COPY {m.group(1)} ({m.group(2)}) FROM STDIN"
                                                ) as cp:
            for r in rows:
                cp.write_row(r)


def _load_day(con: Any, day: int, frames: list[pl.DataFrame]) -> int:
    """One day partition: plain table, COPY (csv), ATTACH (its index built once)."""
    from core.store import pg_history

    name = pg_history.partition_name(day)
    con.execute(f"CREATE TABLE {name} (LIKE sample INCLUDING DEFAULTS)")
    n = 0
    with con.cursor() as cur, cur.copy(f"COPY {name} (tag, ts, value, quality) FROM STDIN "
                                       "(FORMAT csv)") as cp:
        for f in frames:
            buf = io.BytesIO()
            f.write_csv(buf, include_header=False, float_precision=None)
            cp.write(buf.getvalue())
            n += f.height
    con.execute(f"ALTER TABLE sample ATTACH PARTITION {name} FOR VALUES FROM "
                f"({day * pg_history.DAY_US}) TO ({(day + 1) * pg_history.DAY_US})")
    return n


def generate_pg(url: str, n_tags: int, hot_h: int, days: int, seed: int = 5) -> dict[str, Any]:
    import psycopg

    from bench.bench_history import END, S_US, _context, _production, plant_tags, signal
    from core.clock import FrozenClock
    from core.config import load_config
    from core.masterdata import load_master_data
    from core.production import ensure_schema
    from core.store import pg_history
    from core.store.db import open_store

    t0 = time.perf_counter()
    store = open_store(url)
    load_master_data(store, load_config(Path(__file__).resolve().parents[1] / "config.toml"),
                     FrozenClock(END))
    oee = True
    try:
        ensure_schema(store)
    except Exception:  # production_count's DDL not yet portable: OEE is not measured
        oee = False
    store.close()
    tags = plant_tags(n_tags)
    hot_start = to_us(END) - hot_h * 3600 * S_US
    arch_start = hot_start - days * 86_400 * S_US
    with psycopg.connect(dsn_of(url)) as con:
        _CopyCon(con).executemany(
            "INSERT INTO sample_tag (num, tag_id, scope) VALUES",
            [(i + 1, t, eq) for i, (t, eq, _) in enumerate(tags)])
        con.execute("SELECT setval('sample_tag_num_seq', %s)", (len(tags),))
        _context(_CopyCon(con), arch_start, to_us(END))  # type: ignore[arg-type]
        if oee:
            _production(_CopyCon(con), datetime.fromtimestamp(arch_start / S_US, UTC),  # type: ignore[arg-type]
                        END, seed)
        con.commit()
        t_meta = time.perf_counter() - t0
        by_day: dict[int, list[pl.DataFrame]] = {}
        for n, (_, _, kind) in enumerate(tags, 1):
            v = signal(kind, hot_h * 3600, seed * 7 + n)  # the SQLite run's hot values
            ts = hot_start + np.arange(hot_h * 3600, dtype=np.int64) * S_US
            f = pl.DataFrame({"tag": np.full(len(ts), n, np.int32), "ts": ts, "value": v,
                              "quality": np.zeros(len(ts), np.int16)})
            day = f["ts"] // pg_history.DAY_US
            for (d,), part in f.with_columns(day.alias("_d")).group_by(["_d"]):
                by_day.setdefault(int(d), []).append(part.drop("_d"))
        hot = sum(_load_day(con, d, fr) for d, fr in sorted(by_day.items()))
        con.commit()
        pg_history.create_ahead(con, END)
        con.commit()
        con.execute("ANALYZE")
        con.commit()
    return {"tags": tags, "hot": hot, "oee": oee,
            "gen_s": {"metadata": t_meta, "hot": time.perf_counter() - t0 - t_meta}}


def _timed(f: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = f()
    return time.perf_counter() - t, out


def _p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


def measure_pg(url: str, arch: Any, gen: dict[str, Any], days: int, hot_h: int, reps: int,
               seed: int = 3) -> dict[str, Any]:
    import psycopg

    from bench.bench_history import END, MACHINES, ML_SIGNALS
    from core import history as h
    from core.oee import by_shift
    from core.store.db import open_store
    from ml.store_source import StoreSource

    rng = random.Random(seed)
    store = open_store(url)
    tags = gen["tags"]
    num = {t: i + 1 for i, (t, _, _) in enumerate(tags)}
    signals = [t for t, _, k in tags if k in ML_SIGNALS]
    start = END - timedelta(hours=hot_h) - timedelta(days=days)
    out: dict[str, Any] = {}
    con = psycopg.connect(dsn_of(url), autocommit=True)
    try:
        hot_s, raw_s, arch_s = [], [], []
        lo8 = to_us(END - timedelta(hours=8))
        a_hi = END - timedelta(hours=hot_h) - timedelta(days=max(days // 2, 0))
        a_lo = a_hi - timedelta(hours=8)
        for _ in range(reps):
            tag = rng.choice(signals)
            dt, f = _timed(lambda tag=tag: h.history(store, arch, [tag],
                                                      END - timedelta(hours=8), END))
            hot_s.append(dt)
            assert f.height == 8 * 3600 and f["lot_id"].null_count() == 0, f.height
            dt, g = _timed(lambda tag=tag: con.execute(
                "SELECT ts, value, quality FROM sample WHERE tag = %s AND ts >= %s AND ts < %s",
                (num[tag], lo8, to_us(END))).fetchall())
            raw_s.append(dt)
            assert len(g) == 8 * 3600
            if days:
                dt, f = _timed(lambda tag=tag: h.history(store, arch, [tag], a_lo, a_hi))
                arch_s.append(dt)
                assert f.height == 8 * 3600, f.height
        out["tag_8h"] = {"hot_p95_s": _p95(hot_s), "hot_median_s": statistics.median(hot_s),
                         "raw_fetch_p95_s": _p95(raw_s),
                         "archive_p95_s": _p95(arch_s) if arch_s else None}
        tag = signals[0]
        dt, f = _timed(lambda: h.aggregate(store, arch, [tag], start, END, "1m"))
        rt, g = _timed(lambda: con.execute(
            "SELECT ts / 60000000 AS m, min(value), avg(value), max(value) FROM sample "
            "WHERE tag = %s AND quality = 0 GROUP BY m", (num[tag],)).fetchall())
        out["tag_span_1m"] = {"s": dt, "minutes": f.height, "raw_hot_groupby_s": rt,
                              "raw_minutes": len(g)}
        if gen["oee"]:
            runs = [_timed(lambda: by_shift(store, start, END, END)) for _ in range(3)]
            rt, _ = _timed(lambda: (
                con.execute('SELECT equipment_id, state, start, "end" FROM '
                            "equipment_state_interval").fetchall(),
                con.execute("SELECT equipment_id, ts, good, scrap, shift_id, line_id FROM "
                            "production_count").fetchall()))
            out["oee_by_shift"] = {"s": statistics.median(r[0] for r in runs),
                                   "first_s": runs[0][0], "rows": len(runs[0][1]),
                                   "raw_fetch_s": rt}
        ml_tags = [f"{eq}.{s}" for eq in MACHINES for s in ML_SIGNALS if f"{eq}.{s}" in num]
        src = StoreSource(store, arch, ml_tags)
        runs = [_timed(lambda: src.history(END - timedelta(hours=18), END)) for _ in range(3)]
        nums = [num[t] for t in ml_tags]
        lo18 = to_us(END - timedelta(hours=18))
        rt, g = _timed(lambda: con.execute(
            "SELECT tag, ts, value, quality FROM sample WHERE tag = ANY(%s) AND ts >= %s",
            (nums, lo18)).fetchall())
        out["ml_window"] = {"s": statistics.median(r[0] for r in runs), "first_s": runs[0][0],
                            "tags": len(ml_tags), "rows": runs[0][1].height,
                            "raw_fetch_s": rt}
        size = con.execute("SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) "
                           "FROM pg_inherits WHERE inhparent = 'sample'::regclass"
                           ).fetchone()[0]  # type: ignore[index]
        out["bytes_per_sample"] = int(size) / max(gen["hot"], 1)
    finally:
        con.close()
        store.close()
    return out


def run(url: str, arch: Any, n_tags: int, days: int, hot_h: int, reps: int) -> dict[str, Any]:
    """Generate into a fresh schema of ``url``, measure, drop the schema."""
    from bench.pg_store import server_version

    with fresh_schema(url, SCHEMA) as scoped:
        gen = generate_pg(scoped, n_tags, hot_h, days)
        rep = {"server": server_version(url), "tags": n_tags, "hot": gen["hot"],
               "generation": gen["gen_s"]}
        rep.update(measure_pg(scoped, arch, gen, days, hot_h, reps))
    return rep


def print_pg(r: dict[str, Any], hot_h: int) -> None:
    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x * 1000:.1f} ms"

    g = r["generation"]
    print(f"\nPostgreSQL ({r['server']}): hot window {r['tags']} tags x {hot_h} h at 1 Hz = "
          f"{r['hot']:,} rows in day partitions (loaded in {g['hot']:.1f} s = "
          f"{r['hot'] / max(g['hot'], 1e-9):,.0f} rows/s: COPY into a plain table, then "
          f"ATTACH), archive = the Parquet files above")
    t, a, m = r["tag_8h"], r["tag_span_1m"], r["ml_window"]
    print(f"{'read':44} {'loopline':>12} {'raw psycopg':>14}  target")
    print(f"{'one tag, last 8 h (hot), p95':44} {fmt(t['hot_p95_s']):>12} "
          f"{fmt(t['raw_fetch_p95_s']):>14}  < 100 ms  (raw = fetch of its rows)")
    print(f"{'one tag, 8 h in the archive, p95':44} {fmt(t['archive_p95_s']):>12} "
          f"{'':>14}")
    print(f"{'one tag, whole span, 1-min min/mean/max':44} {fmt(a['s']):>12} "
          f"{fmt(a['raw_hot_groupby_s']):>14}  < 1 s  ({a['minutes']:,} minutes; raw = "
          "server GROUP BY of the hot day only)")
    o = r.get("oee_by_shift")
    if o:
        print(f"{'OEE by shift, whole span (median of 3)':44} {fmt(o['s']):>12} "
              f"{fmt(o['raw_fetch_s']):>14}  < 1 s  ({o['rows']:,} rows, first call "
              f"{fmt(o['first_s'])}; raw = fetch of its rows)")
    else:
        print(f"{'OEE by shift':44} {'n/a':>12}  (production_count not creatable on "
              "PostgreSQL by this store version)")
    print(f"{'ML window, 12 machines x 18 h (median of 3)':44} {fmt(m['s']):>12} "
          f"{fmt(m['raw_fetch_s']):>14}  < 1 s  ({m['rows']:,} samples of {m['tags']} tags, "
          f"first call {fmt(m['first_s'])}; raw = fetch of the rows)")
    print(f"PostgreSQL bytes/sample (hot partitions, heap + index): {r['bytes_per_sample']:.1f}")
