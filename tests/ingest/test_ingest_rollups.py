"""1-minute rollups: incremental merge equals the exact answer, in any arrival order."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from ingest_helpers import CTX, at, rows

from core.ingest.rollups import RollupAccumulator, rebuild
from core.ingest.writer import StoreWriter
from core.samples import ContextSample, Quality
from core.store.db import open_store

TAG = "A-LATHE1.bearing_temp"


def _series() -> list[ContextSample]:
    """Two minutes of 1 Hz data, values 0..119, every 10th sample Bad."""
    out = []
    for i in range(120):
        bad = i % 10 == 9
        out.append(ContextSample(TAG, at(i), None if bad else float(i),
                                 Quality.BAD if bad else Quality.GOOD, "timeout" if bad else None,
                                 CTX))
    return out


def _expected(minute: int) -> tuple[float, float, float, int, float]:
    vals = [float(i) for i in range(60 * minute, 60 * minute + 60) if i % 10 != 9]
    return (min(vals), max(vals), sum(vals) / len(vals), 60, len(vals) / 60)


def _rollups(db: Path) -> list[tuple[object, ...]]:
    return rows(db, "SELECT minute, min, max, mean, count, good_share FROM sample_rollup "
                "WHERE tag_id = ? ORDER BY minute", (TAG,))


def _check(got: list[tuple[object, ...]]) -> None:
    assert [g[0] for g in got] == ["2026-01-05 06:00:00.000000", "2026-01-05 06:01:00.000000"]
    for m, g in enumerate(got):
        mn, mx, mean, cnt, share = _expected(m)
        assert (g[1], g[2], g[4]) == (mn, mx, cnt)
        assert abs(g[3] - mean) < 1e-9 and abs(g[5] - share) < 1e-12  # type: ignore[operator]


def test_rollups_out_of_order_across_flushes(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    open_store(str(db)).close()
    series = _series()
    # shuffle within a 5 s window and split into many small flushes
    rng = random.Random(3)
    keyed = sorted(series, key=lambda s: s.source_ts.timestamp() + rng.uniform(0, 5))
    with StoreWriter(db, tmp_path / "spill", flush_ms=10, batch_rows=7,
                     rollup_every_s=0.0) as w:
        for i in range(0, len(keyed), 7):
            w.submit(keyed[i:i + 7])
            assert w.wait_until(lambda s, n=min(i + 7, 120): s.stored >= n)
    assert w.stats.rollup_rows > 2  # merged in several steps, not written once
    _check(_rollups(db))


def test_accumulator_partials_merge_and_rebuild_agree(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    open_store(str(db)).close()
    from core.ingest.rows import to_row
    from core.store.narrow import NarrowWriter
    tuples = [to_row(s) for s in _series()]
    con = sqlite3.connect(str(db), isolation_level=None)
    NarrowWriter(con).write(tuples)
    acc = RollupAccumulator()
    acc.add(tuples[60:])  # second minute first, then the first in two parts
    parts = acc.take()
    acc.add_partials(parts)  # a failed merge folded back
    acc.add(tuples[:30])
    acc.flush(con)
    acc.add(tuples[30:60])
    acc.flush(con)
    con.close()
    _check(_rollups(db))
    con = sqlite3.connect(str(db), isolation_level=None)
    con.execute("DELETE FROM sample_rollup")
    rebuild(con, "2026-01-05 06:00:00.000000", "2026-01-05 06:02:00.000000")
    con.close()
    _check(_rollups(db))


CHILD = """
import sys, time
from core.ingest.writer import StoreWriter
from test_ingest_rollups import _series
w = StoreWriter(sys.argv[1], sys.argv[2], flush_ms=10, rollup_every_s=3600).start()
w.submit(_series())
print("stored" if w.wait_until(lambda s: s.stored == 120, 60) else "timeout", flush=True)
time.sleep(600)
"""


def test_rollups_of_a_killed_writer_are_recovered(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    open_store(str(db)).close()
    here = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": f"{here.parents[1]}{os.pathsep}{here}"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(tmp_path / "spill")],
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "stored"
    finally:
        child.send_signal(signal.SIGKILL)  # rows committed, rollup partials only in memory
        child.wait(30)
    assert _rollups(db) == []
    with StoreWriter(db, tmp_path / "spill", flush_ms=10):
        pass  # start folds the rows after the last rollup watermark back in
    _check(_rollups(db))
    with StoreWriter(db, tmp_path / "spill", flush_ms=10):
        pass  # and a second start does not count them again
    _check(_rollups(db))
