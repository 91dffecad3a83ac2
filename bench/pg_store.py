"""The PostgreSQL half of ``python -m bench store`` (``--db postgresql://…`` or ``--pg``).

The same rows as the SQLite runs, each repetition into a fresh schema (``search_path``)
of the given database, one transaction per batch:

- raw psycopg binary COPY: ``cursor.copy()`` + ``write_row`` of narrow tuples into
  the same partitioned ``sample`` table (tag number looked up and time converted in
  the timed loop, as the writer must; its day partitions made before the clock starts);
- ``PgCopyWriter.write_stamped`` (``ContextSample`` objects, as the contextualizer
  hands them over: tag numbers, reasons, context intervals, partitions, COPY);
- ``write_samples`` (row dicts through SQLAlchemy: the tools' path, also COPY);
- ``NarrowWriter`` INSERTs (psycopg ``executemany``): what COPY replaces.

The order rotates per repetition; medians and ratios to the raw COPY are reported,
plus the bytes per sample of the partition (heap + the (tag, ts) index).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from core.samples import ContextSample
from core.store.chunks import to_us

SCHEMA = "bench_store"


def dsn_of(url: str) -> str:
    """A libpq URL from a SQLAlchemy one (``postgresql+psycopg://`` → ``postgresql://``)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _with_path(url: str, schema: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return u.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)


@contextlib.contextmanager
def fresh_schema(url: str, schema: str = SCHEMA) -> Iterator[str]:
    """An empty schema with loopline's tables (``open_store``); yields its SQLAlchemy URL."""
    import psycopg

    from core.store.db import open_store

    with psycopg.connect(dsn_of(url), autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        con.execute(f"CREATE SCHEMA {schema}")
    scoped = _with_path(url, schema)
    try:
        open_store(scoped).close()
        yield scoped
    finally:
        with psycopg.connect(dsn_of(url), autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _batches(seq: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [seq[i:i + size] for i in range(0, len(seq), size)]


def run_raw_copy(url: str, samples: Sequence[ContextSample], batch: int) -> float:
    import psycopg

    from core.store import pg_history
    from core.store.pg_copy import COPY_SAMPLE, SAMPLE_TYPES

    nums = {t: i + 1 for i, t in enumerate(sorted({s.tag_id for s in samples}))}
    reasons = {"timeout": 1}
    with psycopg.connect(dsn_of(url)) as con:
        lo, hi = to_us(samples[0].source_ts), to_us(samples[-1].source_ts)
        pg_history.ensure_days(con, range(pg_history.day_of(lo), pg_history.day_of(hi) + 2))
        con.commit()
        t = time.perf_counter()
        for b in _batches(samples, batch):
            with con.cursor() as cur, cur.copy(COPY_SAMPLE) as cp:
                cp.set_types(SAMPLE_TYPES)
                for s in b:
                    cp.write_row((nums[s.tag_id], to_us(s.source_ts), s.value, int(s.quality),
                                  reasons.get(s.reason) if s.reason else None))
            con.commit()
        return time.perf_counter() - t


def run_copy_writer(url: str, samples: Sequence[ContextSample], batch: int) -> float:
    import psycopg

    from core.store.pg_copy import PgCopyWriter

    with psycopg.connect(dsn_of(url)) as con:
        w = PgCopyWriter(con)
        con.commit()
        t = time.perf_counter()
        for b in _batches(samples, batch):
            w.write_stamped(b)
            con.commit()
        return time.perf_counter() - t


def run_write_samples(url: str, rows: Sequence[Any], batch: int) -> float:
    from core.store.db import open_store
    from core.store.sample_writer import write_samples

    store = open_store(url)
    try:
        t = time.perf_counter()
        for b in _batches(rows, batch):
            with store.begin() as conn:
                write_samples(conn, b)
        return time.perf_counter() - t
    finally:
        store.close()


def run_inserts(url: str, samples: Sequence[ContextSample], batch: int) -> float:
    import psycopg

    from core.store import pg_history
    from core.store.narrow import NarrowWriter

    with psycopg.connect(dsn_of(url)) as con:
        lo, hi = to_us(samples[0].source_ts), to_us(samples[-1].source_ts)
        pg_history.ensure_days(con, range(pg_history.day_of(lo), pg_history.day_of(hi) + 2))
        w = NarrowWriter(con, "format")
        con.commit()
        t = time.perf_counter()
        for b in _batches(samples, batch):
            w.write_stamped(b)
            con.commit()
        return time.perf_counter() - t


def _count_and_bytes(url: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(dsn_of(url)) as con:
        n = con.execute("SELECT count(*) FROM sample").fetchone()[0]  # type: ignore[index]
        size = con.execute(
            "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
            "WHERE inhparent = 'sample'::regclass").fetchone()[0]  # type: ignore[index]
    return int(n), int(size)


def server_version(url: str) -> str:
    import psycopg

    with psycopg.connect(dsn_of(url)) as con:
        ver = con.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        fsync = con.execute("SHOW fsync").fetchone()[0]  # type: ignore[index]
        sync = con.execute("SHOW synchronous_commit").fetchone()[0]  # type: ignore[index]
    return f"PostgreSQL {ver}, fsync={fsync}, synchronous_commit={sync}"


def measure_pg(url: str, samples: Sequence[ContextSample], dicts: Sequence[dict[str, Any]],
               batch: int, reps: int, inserts: bool = True) -> dict[str, Any]:
    runs: dict[str, Callable[[str], float]] = {
        "raw psycopg COPY (binary)": lambda u: run_raw_copy(u, samples, batch),
        "PgCopyWriter (ContextSample)": lambda u: run_copy_writer(u, samples, batch),
        "write_samples (row dicts)": lambda u: run_write_samples(u, dicts, batch),
    }
    if inserts:
        runs["NarrowWriter INSERTs"] = lambda u: run_inserts(u, samples, batch)
    names = list(runs)
    times: dict[str, list[float]] = {k: [] for k in names}
    n = len(samples)
    size = 0
    for rep in range(reps):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            with fresh_schema(url) as scoped:
                times[name].append(runs[name](scoped))
                written, nbytes = _count_and_bytes(scoped)
                if written != n:
                    raise RuntimeError(f"{name}: wrote {written} rows, expected {n}")
                if name == names[1]:
                    size = nbytes
    raw = statistics.median(times[names[0]])
    return {
        "server": server_version(url), "bytes_per_sample": size / n,
        "results": [{"name": k, "median_s": statistics.median(v),
                     "rows_per_s": n / statistics.median(v),
                     "ratio_to_raw": raw / statistics.median(v), "all_s": v}
                    for k, v in times.items()],
    }


def print_pg(report: dict[str, Any], rows: int, batch: int, reps: int) -> None:
    print(f"\nPostgreSQL: same rows, batches of {batch}, {reps} repetitions (median), "
          f"{report['server']}")
    print(f"{'path':32} {'median s':>9} {'rows/s':>10} {'vs raw COPY':>11}")
    for r in report["results"]:
        print(f"{r['name']:32} {r['median_s']:>9.3f} {r['rows_per_s']:>10,.0f} "
              f"{r['ratio_to_raw']:>10.2f}x")
    print(f"PostgreSQL bytes/sample: {report['bytes_per_sample']:.1f} in the day partition "
          "(heap + (tag, ts) index)")
