"""1-minute rollups per tag (min, max, mean, count, share good) in ``sample_rollup``.

Definitions: ``count`` is every non-text sample in the minute (any quality);
``min``/``max``/``mean`` are over Good samples with a value; ``good_share`` is
good / count. Aggregates are merged, never overwritten: the accumulator folds stored
rows into per-(tag, minute) partials and ``flush`` upserts them with a merge
(min of mins, weighted mean, summed counts), so late or out-of-order samples — seconds
or hours late — land in the right minute with the right figures. ``rebuild``
recomputes minutes exactly from the hot table (the repair job after a crash, when
partials not yet flushed were lost).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from core.ingest.rows import QUALITY, TEXT, TS, VALUE, Row, ts_text
from core.store.chunks import from_us, to_us
from core.store.raw import RawConnection

MERGE_SQL = """
INSERT INTO sample_rollup (tag_id, minute, min, max, mean, count, good_share)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(tag_id, minute) DO UPDATE SET
  min = CASE WHEN sample_rollup.min IS NULL THEN excluded.min
             WHEN excluded.min IS NULL THEN sample_rollup.min
             ELSE min(sample_rollup.min, excluded.min) END,
  max = CASE WHEN sample_rollup.max IS NULL THEN excluded.max
             WHEN excluded.max IS NULL THEN sample_rollup.max
             ELSE max(sample_rollup.max, excluded.max) END,
  mean = CASE
    WHEN round(sample_rollup.count * sample_rollup.good_share)
         + round(excluded.count * excluded.good_share) = 0 THEN NULL
    ELSE (coalesce(sample_rollup.mean, 0) * round(sample_rollup.count * sample_rollup.good_share)
          + coalesce(excluded.mean, 0) * round(excluded.count * excluded.good_share))
         / (round(sample_rollup.count * sample_rollup.good_share)
            + round(excluded.count * excluded.good_share)) END,
  good_share = (round(sample_rollup.count * sample_rollup.good_share)
                + round(excluded.count * excluded.good_share))
               / (sample_rollup.count + excluded.count),
  count = sample_rollup.count + excluded.count
"""
# PostgreSQL's two-argument min/max are least/greatest (the CASEs already handle NULL)
_MERGE_PG = (MERGE_SQL.replace("min(sample_rollup.min,", "least(sample_rollup.min,")
             .replace("max(sample_rollup.max,", "greatest(sample_rollup.max,"))


def merge_sql(dialect: str) -> str:
    """The rollup merge upsert for ``sqlite`` or ``postgresql``."""
    return _MERGE_PG if dialect == "postgresql" else MERGE_SQL


REBUILD_SQL = """
SELECT t.tag_id, s.ts / 60000000 AS m,
       min(CASE WHEN s.quality = 0 THEN s.value END), max(CASE WHEN s.quality = 0 THEN s.value END),
       avg(CASE WHEN s.quality = 0 THEN s.value END), count(*),
       1.0 * sum(CASE WHEN s.quality = 0 AND s.value IS NOT NULL THEN 1 ELSE 0 END) / count(*)
FROM sample s JOIN sample_tag t ON t.num = s.tag
WHERE s.ts >= ? AND s.ts < ?
GROUP BY s.tag, s.ts / 60000000
"""
_REPLACE = ("INSERT INTO sample_rollup (tag_id, minute, min, max, mean, count, "
            "good_share) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tag_id, minute) DO UPDATE "
            "SET min = excluded.min, max = excluded.max, mean = excluded.mean, "
            "count = excluded.count, good_share = excluded.good_share")
_MINUTE_US = 60_000_000


def minute_text(minute: int) -> str:
    """Minute number (µs // 60 s) to the ``sample_rollup.minute`` text."""
    return ts_text(from_us(minute * _MINUTE_US))


def minute_of(text: str) -> int:
    return to_us(datetime.fromisoformat(text[:16]).replace(tzinfo=UTC)) // _MINUTE_US


class RollupAccumulator:
    """Per-(tag, minute) partials of stored rows, merged into the table on ``flush``."""

    def __init__(self) -> None:
        # key -> [min, max, sum, good, count]
        self._parts: dict[tuple[str, int], list[float]] = {}

    def __len__(self) -> int:
        return len(self._parts)

    def add(self, rows: Iterable[Row]) -> None:
        parts = self._parts
        for r in rows:
            if r[TEXT] is not None:
                continue
            key = (r[0], r[TS] // _MINUTE_US)
            p = parts.get(key)
            if p is None:
                p = parts[key] = [float("inf"), float("-inf"), 0.0, 0, 0]
            p[4] += 1
            v = r[VALUE]
            if r[QUALITY] == 0 and v is not None:
                p[3] += 1
                p[2] += v
                if v < p[0]:
                    p[0] = v
                if v > p[1]:
                    p[1] = v

    def add_narrow(self, rows: Iterable[tuple[Any, ...]], names: dict[int, str]) -> None:
        """Fold ``sample`` tuples (tag number, ts, value, quality, reason)."""
        parts = self._parts
        for num, ts, v, q, _ in rows:
            key = (names[num], ts // _MINUTE_US)
            p = parts.get(key)
            if p is None:
                p = parts[key] = [float("inf"), float("-inf"), 0.0, 0, 0]
            p[4] += 1
            if q == 0 and v is not None:
                p[3] += 1
                p[2] += v
                if v < p[0]:
                    p[0] = v
                if v > p[1]:
                    p[1] = v

    def take(self) -> list[tuple[str, str, float | None, float | None, float | None, int, float]]:
        """The partials as merge parameters; the accumulator is emptied."""
        out = []
        for (tag, minute), (mn, mx, sm, good, cnt) in self._parts.items():
            g = int(good)
            out.append((tag, minute_text(minute), mn if g else None, mx if g else None,
                        sm / g if g else None, int(cnt), g / cnt if cnt else 1.0))
        self._parts = {}
        return out

    def add_partials(self, params: Iterable[tuple[Any, ...]]) -> None:
        """Fold back partials from ``take`` (a merge that failed and will be retried)."""
        parts = self._parts
        for tag, minute, mn, mx, mean, cnt, share in params:
            good = round(cnt * share)
            key = (tag, minute_of(minute))
            p = parts.get(key)
            if p is None:
                p = parts[key] = [float("inf"), float("-inf"), 0.0, 0, 0]
            p[4] += cnt
            if good:
                p[3] += good
                p[2] += mean * good
                p[0] = min(p[0], mn)
                p[1] = max(p[1], mx)

    def flush(self, con: RawConnection) -> int:
        """Merge the partials in the caller's transaction; returns the rows touched."""
        params = self.take()
        if params:
            con.executemany(merge_sql(getattr(con, "dialect", "sqlite")), params)
        return len(params)


def rebuild(con: RawConnection, start: str, end: str) -> None:
    """Recompute every minute in [start, end) (``ts_text`` times) from the recent rows.

    Rows above the rollup mark (those whose partials a crash can lose) are never
    compacted into chunks before they are rolled up, so the recent rows are enough.
    """
    lo = to_us(datetime.fromisoformat(start).replace(tzinfo=UTC))
    hi = to_us(datetime.fromisoformat(end).replace(tzinfo=UTC))
    rows = con.execute(REBUILD_SQL, (lo, hi)).fetchall()
    con.executemany(_REPLACE, [(r[0], minute_text(r[1]), *r[2:]) for r in rows])
