"""Store benchmark: sample writer rows/s beside raw sqlite3 executemany, same rows, same run.

    python -m bench store [--rows 100000] [--batch 5000] [--reps 5] [--json]
                          [--db postgresql+psycopg://… | --pg]

Each repetition writes the same rows into fresh store files with the same schema and
pragmas (WAL, synchronous=NORMAL), one transaction per batch: through
``core.store.sample_writer.write_samples`` (row dicts, and ``ContextSample`` objects as
the contextualizer hands them over) and through plain ``sqlite3.executemany`` of
narrow tuples (tag number looked up and timestamp converted inside the timed loop, as
the writer must). The order of the three runs rotates per repetition; medians and ratios
are reported, and the file's bytes per sample as written (recent rows) and after
compaction into per-tag chunks.

With ``--db`` (a PostgreSQL URL; fresh schemas are made in that database) or ``--pg``
(a throwaway cluster started for the run, fsync on), the same rows are also written to
PostgreSQL beside raw psycopg COPY of them (``bench/pg_store.py``).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.ingest.compaction import compact
from core.samples import Context, ContextSample, Quality
from core.store.chunks import to_us
from core.store.db import open_store
from core.store.narrow import INSERT_SAMPLE
from core.store.sample_writer import COLUMNS, write_samples

T0 = datetime(2026, 1, 5, 6, 0, 0, tzinfo=UTC)


def make_rows(n: int, seed: int = 7) -> list[ContextSample]:
    """Deterministic samples: 12 machines x 16 tags, 1 s apart, a few Bad ones."""
    rng = random.Random(seed)
    eqs = [f"{ln}-M{i}" for ln in "ABC" for i in range(1, 5)]
    tags = [(eq, f"{eq}.t{k:02d}") for eq in eqs for k in range(16)]
    out = []
    for i in range(n):
        eq, tag = tags[i % len(tags)]
        bad = rng.random() < 0.01
        ctx = Context(equipment_id=eq, line_id=eq[0], order_id="PO-0001", lot_id="L-00101",
                      recipe_id="R-SH20", batch_id="B-0001", shift_id="early",
                      operator_id="olga", step="10")
        out.append(ContextSample(
            tag, T0 + timedelta(milliseconds=100 * i), None if bad else rng.uniform(0, 100),
            Quality.BAD if bad else Quality.GOOD, "timeout" if bad else None, ctx))
    return out


def _batches(seq: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [seq[i:i + size] for i in range(0, len(seq), size)]


def run_writer(path: Path, rows: Sequence[Any], batch: int) -> float:
    store = open_store(str(path))
    try:
        t = time.perf_counter()
        for b in _batches(rows, batch):
            with store.begin() as conn:
                write_samples(conn, b)
        return time.perf_counter() - t
    finally:
        store.close()


def run_raw(path: Path, samples: Sequence[ContextSample], batch: int) -> float:
    open_store(str(path)).close()  # same schema and indexes
    con = sqlite3.connect(str(path), isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    sql = INSERT_SAMPLE
    nums = {t: i + 1 for i, t in enumerate(sorted({s.tag_id for s in samples}))}
    reasons = {"timeout": 1}
    try:
        t = time.perf_counter()
        for b in _batches(samples, batch):
            tuples = [
                (nums[s.tag_id], to_us(s.source_ts), s.value, int(s.quality),
                 reasons.get(s.reason) if s.reason else None)
                for s in b
            ]
            con.execute("BEGIN")
            con.executemany(sql, tuples)
            con.execute("COMMIT")
        return time.perf_counter() - t
    finally:
        con.close()


def count(path: Path) -> int:
    con = sqlite3.connect(str(path))
    try:
        return int(con.execute("SELECT count(*) FROM sample").fetchone()[0])
    finally:
        con.close()


def file_bytes(path: Path) -> int:
    """The store's size with its WAL checkpointed and free pages dropped."""
    con = sqlite3.connect(str(path), isolation_level=None)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("VACUUM")
    finally:
        con.close()
    return path.stat().st_size


def bytes_per_sample(path: Path, n: int) -> tuple[float, float]:
    """(bytes/sample as recent rows, bytes/sample once compacted), an empty store subtracted."""
    empty = path.with_name("empty.db")
    open_store(str(empty)).close()
    base = file_bytes(empty)
    rows = file_bytes(path) - base
    con = sqlite3.connect(str(path), isolation_level=None)
    try:
        compact(con)
    finally:
        con.close()
    return rows / n, (file_bytes(path) - base) / n


def row_dicts(samples: Sequence[ContextSample]) -> list[dict[str, Any]]:
    return [{c: r.get(c) for c in COLUMNS} for r in
             ({"tag_id": s.tag_id, "ts": s.source_ts, "value": s.value, "quality": int(s.quality),
               "reason": s.reason, **{f: getattr(s.ctx, f) for f in (
                   "equipment_id", "line_id", "order_id", "lot_id", "recipe_id", "batch_id",
                   "shift_id", "operator_id")}} for s in samples)]


def measure(n_rows: int, batch: int, reps: int) -> dict[str, Any]:
    samples = make_rows(n_rows)
    dicts = row_dicts(samples)
    runs: dict[str, Callable[[Path], float]] = {
        "raw sqlite3 executemany": lambda p: run_raw(p, samples, batch),
        "write_samples (row dicts)": lambda p: run_writer(p, dicts, batch),
        "write_samples (ContextSample)": lambda p: run_writer(p, samples, batch),
    }
    names = list(runs)
    times: dict[str, list[float]] = {k: [] for k in names}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        for rep in range(reps):
            order = names[rep % len(names):] + names[:rep % len(names)]
            for name in order:
                path = Path(tmp) / f"{rep}-{names.index(name)}.db"
                times[name].append(runs[name](path))
                written = count(path)
                if written != n_rows:
                    raise RuntimeError(f"{name}: wrote {written} rows, expected {n_rows}")
                if rep == 0 and name == names[1]:
                    disk = bytes_per_sample(path, n_rows)
                for suffix in ("", "-wal", "-shm"):
                    Path(str(path) + suffix).unlink(missing_ok=True)
    raw = statistics.median(times[names[0]])
    return {
        "rows": n_rows, "batch": batch, "reps": reps,
        "bytes_per_sample_rows": disk[0], "bytes_per_sample_chunks": disk[1],
        "results": [
            {"name": k, "median_s": statistics.median(v),
             "rows_per_s": n_rows / statistics.median(v),
             "ratio_to_raw": raw / statistics.median(v),
             "all_s": v}
            for k, v in times.items()
        ],
    }


def print_table(report: dict[str, Any]) -> None:
    print(f"sample writes: {report['rows']} rows, batches of {report['batch']}, "
          f"{report['reps']} repetitions (median), WAL + synchronous=NORMAL")
    print(f"{'path':32} {'median s':>9} {'rows/s':>10} {'vs raw':>7}")
    for r in report["results"]:
        print(f"{r['name']:32} {r['median_s']:>9.3f} {r['rows_per_s']:>10,.0f} "
              f"{r['ratio_to_raw']:>6.2f}x")
    print(f"SQLite bytes/sample: {report['bytes_per_sample_rows']:.1f} as recent rows, "
          f"{report['bytes_per_sample_chunks']:.1f} compacted into chunks (uniform noise)")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench store",
                                 description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--db", help="also PostgreSQL: a postgresql+psycopg:// URL")
    ap.add_argument("--pg", action="store_true",
                    help="also PostgreSQL, on a throwaway cluster started for the run")
    args = ap.parse_args(argv)
    if args.rows < 1 or args.batch < 1 or args.reps < 1:
        ap.error("--rows, --batch and --reps must be positive")
    if args.db and not args.db.startswith("postgresql"):
        ap.error("--db takes a PostgreSQL URL (postgresql+psycopg://user@host/db)")
    report = measure(args.rows, args.batch, args.reps)
    if args.db or args.pg:
        report["postgresql"] = _postgres(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
        if "postgresql" in report:
            from bench.pg_store import print_pg

            print_pg(report["postgresql"], args.rows, args.batch, args.reps)
    return 0


def _postgres(args: argparse.Namespace) -> dict[str, Any]:
    from bench.pg_store import measure_pg
    from bench.pgserver import throwaway_cluster

    samples = make_rows(args.rows)
    dicts = row_dicts(samples)
    if args.db:
        return measure_pg(args.db, samples, dicts, args.batch, args.reps)
    with throwaway_cluster(durable=True) as cluster:
        return measure_pg(cluster.new_database(), samples, dicts, args.batch, args.reps)


if __name__ == "__main__":
    sys.exit(main())
