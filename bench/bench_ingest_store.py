"""Ingest benchmark: contextualizer + store writer rows/s beside raw sqlite3 executemany.

    python -m bench ingest_store [--tags 2000] [--seconds 60] [--reps 3] [--json]

Synthetic plant: ``--tags`` tags on equipment of 20 tags each (one of them a lot
context tag, so context changes happen), one sample per tag per second for
``--seconds`` seconds. The loopline path stamps each second's samples with the
``Contextualizer`` and submits them to a ``StoreWriter`` (own thread, own connection,
spill buffer armed, rollups on), timed until ``close()`` has drained every row. The
baseline inserts the same rows with plain sqlite3 executemany in batches of the
writer's size, the row tuples built *before* the clock starts: it times only the
database work, the ceiling for any writer, so the ratio is loopline's whole cost
(stamping, conversion, queue, thread, rollups, compaction into per-tag chunks) on top
of it. Rows are narrow: (tag number, µs time, value, quality, reason code). Both write fresh store
files with the same schema and pragmas. Medians over ``--reps``; the order of the two
runs alternates. Reports drops, spills, and the process's peak RSS growth during the
loopline run.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.config.loader import ResolvedTag
from core.config.schema import Tag
from core.ingest.contextualizer import Contextualizer
from core.ingest.rows import to_row
from core.ingest.writer import StoreWriter
from core.samples import Context, Quality, Sample
from core.store.chunks import to_us
from core.store.db import open_store
from core.store.narrow import INSERT_SAMPLE

T0 = datetime(2026, 1, 5, 6, 0, 0, tzinfo=UTC)
PER_EQ = 20


def make_tags(n: int) -> list[ResolvedTag]:
    out = []
    for i in range(n):
        eq, k = f"E{i // PER_EQ:04d}", i % PER_EQ
        line = "ABC"[(i // PER_EQ) % 3]
        if k == 0:
            spec = Tag(name="lot", address=f"x:{i}", kind="context", data_type="uint32",
                       id_format="L-{:05d}")
        else:
            spec = Tag(name=f"s{k:02d}", address=f"x:{i}")
        out.append(ResolvedTag(f"{eq}.{spec.name}", spec.name, eq, line, "synthetic", spec))
    return out


def make_samples(tags: list[ResolvedTag], seconds: int, seed: int = 11) -> list[list[Sample]]:
    """One list per plant second; a new lot every 20 s, 0.5 % Bad, a few NaN."""
    rng = random.Random(seed)
    out = []
    for sec in range(seconds):
        ts = T0 + timedelta(seconds=sec)
        batch = []
        for t in tags:
            if t.name == "lot":
                batch.append(Sample(t.id, ts, 101 + sec // 20))
                continue
            r = rng.random()
            if r < 0.005:
                batch.append(Sample(t.id, ts, None, Quality.BAD, "timeout"))
            elif r < 0.0055:
                batch.append(Sample(t.id, ts, float("nan")))
            else:
                batch.append(Sample(t.id, ts, rng.uniform(0, 100)))
        out.append(batch)
    return out


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_loopline(db: Path, spill: Path, tags: list[ResolvedTag],
                 batches: list[list[Sample]], batch_rows: int) -> dict[str, Any]:
    open_store(str(db)).close()
    cz = Contextualizer(tags)
    w = StoreWriter(db, spill, batch_rows=batch_rows, flush_ms=200, queue_max=200_000)
    rss0 = rss_mb()
    t = time.perf_counter()
    w.start()
    for b in batches:
        w.submit(cz.stamp(b))
    st = w.close(timeout=600)
    dt = time.perf_counter() - t
    return {"s": dt, "stored": st.stored, "dropped": st.dropped, "spilled": st.spilled_total,
            "quarantined": st.quarantined, "balanced": st.balanced,
            "rss_growth_mb": rss_mb() - rss0, "changes": len(cz.drain_changes()),
            "compacted": st.compacted}


def run_raw(db: Path, tags: list[ResolvedTag], batches: list[list[Sample]],
            batch_rows: int) -> float:
    open_store(str(db)).close()
    ctx = {t.equipment_id: Context(equipment_id=t.equipment_id, line_id=t.line_id,
                                   lot_id="L-00101") for t in tags}
    flat = [(s, ctx[s.tag_id.split(".")[0]]) for b in batches for s in b]
    nums = {t.id: i + 1 for i, t in enumerate(tags)}
    codes = {"timeout": 1}
    assert ctx
    rows = [(nums[s.tag_id], to_us(s.source_ts), s.value if s.quality == 0 else None,
             int(s.quality), codes.get(s.reason) if s.reason else None) for s, _ in flat]
    con = sqlite3.connect(str(db), isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    try:
        t = time.perf_counter()  # only the database work: the ceiling for any writer
        for i in range(0, len(rows), batch_rows):
            con.execute("BEGIN")
            con.executemany(INSERT_SAMPLE, rows[i:i + batch_rows])
            con.execute("COMMIT")
        return time.perf_counter() - t
    finally:
        con.close()


def measure(n_tags: int, seconds: int, reps: int, batch_rows: int) -> dict[str, Any]:
    tags = make_tags(n_tags)
    batches = make_samples(tags, seconds)
    n = sum(len(b) for b in batches)
    assert to_row  # the writer's row conversion is what the loopline path times
    loop_runs: list[dict[str, Any]] = []
    raw_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        for rep in range(reps):
            order = ["loopline", "raw"] if rep % 2 == 0 else ["raw", "loopline"]
            for name in order:
                db = Path(tmp) / f"{rep}-{name}.db"
                if name == "raw":
                    raw_s.append(run_raw(db, tags, batches, batch_rows))
                else:
                    loop_runs.append(run_loopline(db, Path(tmp) / f"spill-{rep}", tags,
                                                  batches, batch_rows))
                con = sqlite3.connect(str(db))
                got = con.execute("SELECT count(*) FROM sample").fetchone()[0] + (
                    con.execute("SELECT coalesce(sum(n), 0) FROM sample_chunk").fetchone()[0])
                got += con.execute("SELECT count(*) FROM sample_text").fetchone()[0]
                con.close()
                lost = n - got - (loop_runs[-1]["quarantined"] if name == "loopline" else 0)
                if lost:
                    raise RuntimeError(f"{name}: {lost} of {n} rows missing")
                for suffix in ("", "-wal", "-shm"):
                    Path(str(db) + suffix).unlink(missing_ok=True)
    loop_med = statistics.median(r["s"] for r in loop_runs)
    raw_med = statistics.median(raw_s)
    return {
        "tags": n_tags, "seconds": seconds, "rows": n, "reps": reps, "batch_rows": batch_rows,
        "raw": {"median_s": raw_med, "rows_per_s": n / raw_med, "all_s": raw_s},
        "loopline": {"median_s": loop_med, "rows_per_s": n / loop_med,
                     "all_s": [r["s"] for r in loop_runs],
                     "dropped": sum(r["dropped"] for r in loop_runs),
                     "spilled": sum(r["spilled"] for r in loop_runs),
                     "balanced": all(r["balanced"] for r in loop_runs),
                     "context_changes": loop_runs[0]["changes"],
                     "compacted": loop_runs[0]["compacted"],
                     "rss_growth_mb": max(r["rss_growth_mb"] for r in loop_runs)},
        "ratio_to_raw": raw_med / loop_med,
    }


def print_table(r: dict[str, Any]) -> None:
    lp = r["loopline"]
    print(f"ingest: {r['tags']} tags x {r['seconds']} s = {r['rows']:,} samples, batches of "
          f"{r['batch_rows']}, {r['reps']} reps (median), WAL + synchronous=NORMAL")
    print(f"{'path':40} {'median s':>9} {'rows/s':>10} {'vs raw':>7}")
    print(f"{'raw sqlite3 executemany':40} {r['raw']['median_s']:>9.3f} "
          f"{r['raw']['rows_per_s']:>10,.0f} {1.0:>6.2f}x")
    print(f"{'contextualizer + StoreWriter (drained)':40} {lp['median_s']:>9.3f} "
          f"{lp['rows_per_s']:>10,.0f} {r['ratio_to_raw']:>6.2f}x")
    print(f"dropped {lp['dropped']}, spilled {lp['spilled']}, counters balanced "
          f"{lp['balanced']}, context changes {lp['context_changes']}, "
          f"rows compacted into chunks during the run {lp['compacted']:,}, "
          f"peak RSS growth {lp['rss_growth_mb']:.1f} MB")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench ingest_store",
                                 description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--tags", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if min(args.tags, args.seconds, args.reps, args.batch) < 1:
        ap.error("--tags, --seconds, --reps and --batch must be positive")
    report = measure(args.tags, args.seconds, args.reps, args.batch)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
