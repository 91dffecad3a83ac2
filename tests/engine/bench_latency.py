"""Detection → recommendation committed: latency of ``Engine.on_detection`` on a real store.

Not a test (no timing assertions in tests): run it by hand and read the figures beside
the raw baseline measured in the same run (a bare sqlite3 INSERT + COMMIT of a row of
the same size into the same kind of file, WAL, synchronous=NORMAL).

    .venv/bin/python tests/engine/bench_latency.py [N]
"""

from __future__ import annotations

import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent.parent), str(HERE.parent)]

from core.clock import FrozenClock  # noqa: E402
from core.config import load_config  # noqa: E402
from core.masterdata import load_master_data  # noqa: E402
from core.store.db import open_store  # noqa: E402
from engine.helpers import PLANT_START, bearing, make_engine  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))] * 1000


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "bench.db"))
        clock = FrozenClock(PLANT_START)
        loaded = load_config(HERE.parent.parent / "config.toml")
        load_master_data(store, loaded, clock)
        eng = make_engine(store, loaded, clock)
        created, merged = [], []
        for i in range(n):
            clock.advance(1)
            det = bearing(PLANT_START + timedelta(seconds=i), key=f"bench:{i}")
            t0 = time.perf_counter()
            assert eng.on_detection(det).outcome == "created"
            created.append(time.perf_counter() - t0)
        for i in range(n):
            clock.advance(1)
            det = bearing(PLANT_START + timedelta(seconds=n + i), key=f"bench:{i}")
            t0 = time.perf_counter()
            assert eng.on_detection(det).outcome == "merged"
            merged.append(time.perf_counter() - t0)
        store.close()

        raw = sqlite3.connect(str(Path(tmp) / "raw.db"), isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=NORMAL")
        raw.execute("CREATE TABLE r (id TEXT PRIMARY KEY, body TEXT)")
        body = "x" * 3000  # about the size of a recommendation row with its evidence
        base = []
        for i in range(n):
            t0 = time.perf_counter()
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("INSERT INTO r VALUES (?, ?)", (f"r{i}", body))
            raw.execute("COMMIT")
            base.append(time.perf_counter() - t0)
        raw.close()

    print(f"detections: {n} new problems, then {n} repeats (bearing limit rule, SQLite WAL)")
    for name, xs in (("created", created), ("merged", merged), ("raw insert", base)):
        print(f"  {name:<11} p50 {pct(xs, 0.5):7.2f} ms   p99 {pct(xs, 0.99):7.2f} ms   "
              f"mean {statistics.fmean(xs) * 1000:7.2f} ms")
    print(f"  ratio created/raw (p50): {pct(created, 0.5) / pct(base, 0.5):.1f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
