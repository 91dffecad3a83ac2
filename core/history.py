"""History for a tag set and time range: recent rows, chunks and the Parquet archive as one frame.

Storage is narrow (``core.store.models``: ``sample``, ``sample_chunk``, ``sample_text``,
``context_interval``, archive files in ``archive_dir/date=*/``); this module puts the
strings and the context back. Read path, per call:

1. tag ids → tag numbers (``sample_tag``), then for those numbers in [start, end):
   recent rows (``sample``), the chunks whose span overlaps (index on (tag, t1)),
   text samples, and the archive files of the dates touched (polars scan, predicate
   pushed down to row groups: the files are sorted by (tag, ts));
2. a chunk read from SQLite and also found in the archive (an archive pass that
   died between writing its file and deleting its chunks) is kept once, by chunk seq;
3. reason codes → texts, and an as-of join with each machine's context intervals
   (the interval in force at the sample's time; none after it was closed).

The frame follows the ML contract (``ml/contract.py``) and is what this module always
returned: tag_id, ts (datetime[us, UTC]), value (f64, null when Bad), quality (i8),
equipment_id, line_id, lot_id, order_id, recipe_id, batch_id, shift_id, operator_id,
text_value, reason; sorted by ts, then tag. Files from before the narrow layout
(``line=*/date=*``, context on every row) are read as they are.

``latest`` and ``newest_ts`` are the small reads of the console, the engine and the
runtime (newest points of a few tags; the newest sample time).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from core.store.chunks import decode, from_us, to_us
from core.store.db import Store, guard
from core.store.narrow import CTX_FIELDS

CONTEXT = ["equipment_id", "line_id", "lot_id", "order_id", "recipe_id", "batch_id",
           "shift_id", "operator_id"]
COLUMNS = ["tag_id", "ts", "value", "quality", *CONTEXT, "text_value", "reason"]
_CHUNK = 500
NARROW_SCHEMA: dict[str, Any] = {"tag": pl.Int64(), "ts": pl.Int64(), "value": pl.Float64(),
                                 "quality": pl.Int8(), "reason": pl.Int64(),
                                 "text_value": pl.String(), "chunk": pl.Int64()}
OUT_SCHEMA: dict[str, Any] = {
    "tag_id": pl.String(), "ts": pl.Datetime("us", "UTC"), "value": pl.Float64(),
    "quality": pl.Int8(), **{c: pl.String() for c in CONTEXT}, "text_value": pl.String(),
    "reason": pl.String()}


def _sql(conn: Any, sql: str) -> str:
    return sql if conn.dialect.paramstyle == "qmark" else sql.replace("?", "%s")


def _rows(conn: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.exec_driver_sql(_sql(conn, sql), tuple(params)).fetchall()]


def _in(conn: Any, sql: str, keys: Sequence[Any], params: Sequence[Any] = ()
        ) -> list[tuple[Any, ...]]:
    """``sql`` with ``{marks}`` for an IN list, run in slices of ``_CHUNK`` keys."""
    out: list[tuple[Any, ...]] = []
    for i in range(0, len(keys), _CHUNK):
        part = list(keys[i:i + _CHUNK])
        out.extend(_rows(conn, sql.format(marks=", ".join("?" for _ in part)),
                         (*part, *params)))
    return out


def tag_numbers(conn: Any, tag_ids: Sequence[str]) -> dict[str, tuple[int, str | None]]:
    """tag id → (tag number, scope) for the tags the history tables know."""
    rows = _in(conn, "SELECT tag_id, num, scope FROM sample_tag WHERE tag_id IN ({marks})",
               tag_ids)
    return {r[0]: (int(r[1]), r[2]) for r in rows}


def _empty_narrow() -> pl.DataFrame:
    return pl.DataFrame(schema=NARROW_SCHEMA)


def _chunks_frame(chunks: list[tuple[Any, ...]], lo: int, hi: int) -> pl.DataFrame:
    import numpy as np

    if not chunks:
        return _empty_narrow()
    parts = [decode(blob, t0) for _, _, t0, blob in chunks]
    lens = [len(c.ts) for c in parts]
    df = pl.DataFrame({
        "tag": np.repeat(np.array([c[1] for c in chunks], np.int64), lens),
        "ts": np.concatenate([c.ts for c in parts]),
        "value": pl.Series(np.concatenate([c.value for c in parts]), nan_to_null=True),
        "quality": np.concatenate([c.quality for c in parts]).view(np.int8),
        "reason": np.concatenate([c.reason for c in parts]).astype(np.int64),
        "chunk": np.repeat(np.array([c[0] for c in chunks], np.int64), lens),
    })
    if any(c[2] < lo for c in chunks) or any(int(p.ts[-1]) >= hi for p in parts if len(p.ts)):
        df = df.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
    return df.with_columns(
        pl.when(pl.col("reason") < 0).then(None).otherwise(pl.col("reason")).alias("reason"),
        pl.lit(None, pl.String()).alias("text_value"),
    ).select(list(NARROW_SCHEMA))


def hot_narrow(conn: Any, nums: Sequence[int], lo: int, hi: int
               ) -> tuple[pl.DataFrame, set[int]]:
    """Recent rows, chunks and text samples of tag numbers in [lo, hi) µs; chunk seqs read."""
    if not nums:
        return _empty_narrow(), set()
    pg = conn.dialect.name == "postgresql"
    recent = [] if pg else _in(conn, "SELECT tag, ts, value, quality, reason, NULL, NULL "
                               "FROM sample WHERE tag IN ({marks}) AND ts >= ? AND ts < ?",
                               nums, (lo, hi))
    texts = _in(conn, "SELECT tag, ts, NULL, quality, reason, text, NULL FROM sample_text "
                "WHERE tag IN ({marks}) AND ts >= ? AND ts < ?", nums, (lo, hi))
    chunks = _in(conn, "SELECT seq, tag, t0, data FROM sample_chunk "
                 "WHERE tag IN ({marks}) AND t1 >= ? AND t0 < ?", nums, (lo, hi))
    frames = [_chunks_frame(chunks, lo, hi),
              pl.DataFrame(recent + texts, schema=NARROW_SCHEMA, orient="row")]
    seen = {int(c[0]) for c in chunks}
    if pg:  # day partitions (core.store.pg_history): rows by COPY; markers of attached days
        from core.store.pg_history import markers, sample_frame

        frames.append(sample_frame(conn, nums, lo, hi).with_columns(
            pl.lit(None, pl.String()).alias("text_value"), pl.lit(None, pl.Int64()).alias("chunk")
        ).select(list(NARROW_SCHEMA)))
        seen |= markers(conn, lo, hi)
    return pl.concat(frames, how="vertical"), seen


def _dates(archive_dir: Path, pattern: str, start: datetime, end: datetime) -> list[str]:
    """Parquet files in the date partitions the range touches (partition pruning)."""
    first = start.astimezone(UTC).date()  # a chunk is one hour: it never crosses midnight
    last = (end - timedelta(microseconds=1)).astimezone(UTC).date()
    if pattern.startswith("line="):  # the old archiver's files: by the rows' own dates too
        last = end.astimezone(UTC).date()
    out = []
    for d in archive_dir.glob(pattern):
        try:
            day = date.fromisoformat(d.name.removeprefix("date="))
        except ValueError:
            continue
        if first <= day <= last:
            out.extend(str(p) for p in d.glob("*.parquet"))
    return sorted(out)


def archived_narrow(archive_dir: Path, nums: Sequence[int], start: datetime, end: datetime,
                    skip_chunks: set[int]) -> pl.DataFrame | None:
    files = _dates(archive_dir, "date=*", start, end) if archive_dir.exists() else []
    if not files or not nums:
        return None
    lo, hi = to_us(start), to_us(end)
    f = (pl.scan_parquet(files, hive_partitioning=False)
         .filter(pl.col("tag").is_in(list(nums))
                 & (pl.col("ts") >= from_us(lo)) & (pl.col("ts") < from_us(hi))))
    if skip_chunks:
        f = f.filter(~pl.col("chunk").is_in(list(skip_chunks)))
    df = f.collect()
    return df.with_columns(pl.col("ts").dt.epoch("us"),
                           pl.lit(None, pl.String()).alias("text_value")
                           ).select(list(NARROW_SCHEMA)).cast(NARROW_SCHEMA)


def _legacy(archive_dir: Path, tag_ids: Sequence[str], start: datetime,
            end: datetime) -> pl.DataFrame | None:
    """Archive files written before the narrow layout: context already on every row."""
    files = _dates(archive_dir, "line=*/date=*", start, end) if archive_dir.exists() else []
    if not files:
        return None
    in_range = pl.col("ts").is_between(start.astimezone(UTC), end.astimezone(UTC),
                                       closed="left")
    df = (pl.scan_parquet(files, hive_partitioning=False)
          .filter(pl.col("tag_id").is_in(list(tag_ids)) & in_range).collect())
    return df.select(COLUMNS).cast(OUT_SCHEMA)


def intervals(conn: Any, scopes: Sequence[str], lo: int, hi: int) -> pl.DataFrame:
    """The context intervals of machines that overlap [lo, hi) µs."""
    cols = ", ".join(CTX_FIELDS)
    rows = _in(conn, f"SELECT scope, valid_from, valid_to, {cols} FROM context_interval "
               "WHERE scope IN ({marks}) AND valid_from < ? "
               "AND (valid_to IS NULL OR valid_to > ?) ORDER BY id", scopes, (hi, lo))
    schema = {"scope": pl.String(), "valid_from": pl.Int64(), "valid_to": pl.Int64(),
              **{c: pl.String() for c in CTX_FIELDS}}
    return pl.DataFrame(rows, schema=schema, orient="row")


def contextualize(narrow: pl.DataFrame, tags: dict[str, tuple[int, str | None]],
                  reasons: dict[int, str], ivals: pl.DataFrame) -> pl.DataFrame:
    """Narrow rows → contract frame: tag ids, reason texts, the context in force (as-of).

    Integers all the way until the end: rows are sorted by (ts, rank of the tag id) on
    one int64 key, matched to an interval number per machine number, and only then do
    the strings come in, gathered by index (tag ids by rank, the context of the matched
    interval by its row number) instead of joined.
    """
    names = sorted(tags)
    scopes = sorted({v[1] for v in tags.values() if v[1] is not None})
    scope_no = {sc: i for i, sc in enumerate(scopes)}
    rank = {tags[n][0]: i for i, n in enumerate(names)}
    scope_of = {tags[n][0]: scope_no[tags[n][1]] for n in names  # type: ignore[index]
                if tags[n][1] is not None}
    iv = (ivals.filter(pl.col("valid_to").is_null()
                       | (pl.col("valid_to") > pl.col("valid_from")))
          .with_columns(pl.col("scope").replace_strict(scope_no, default=None,
                                                       return_dtype=pl.Int64()).alias("scope_no"))
          .with_row_index("iv").with_columns(pl.col("iv").cast(pl.Int64())))
    keys = iv.select("scope_no", "valid_from", "valid_to", "iv").sort("valid_from",
                                                                     maintain_order=True)
    top = max(rank, default=0) + 1  # tag numbers are small: look them up by index
    rank_lut = pl.Series([rank.get(k) for k in range(top)], dtype=pl.Int64())
    scope_lut = pl.Series([scope_of.get(k) for k in range(top)], dtype=pl.Int64())
    tag_col = narrow["tag"]
    df = narrow.with_columns(rank_lut.gather(tag_col).alias("rank"),
                             scope_lut.gather(tag_col).alias("scope_no"))
    if len(names) < 2048:  # ts (µs, < 2^52 until 2112) * 2048 + rank fits in an int64
        df = df.sort(pl.col("ts") * 2048 + pl.col("rank"), maintain_order=True)
    else:
        df = df.sort(["ts", "rank"], maintain_order=True)
    df = df.join_asof(keys, left_on="ts", right_on="valid_from", by="scope_no",
                      strategy="backward", check_sortedness=False)
    first = keys.group_by("scope_no").agg(pl.col("iv").first().alias("first_iv"))
    df = df.join(first, on="scope_no", how="left", maintain_order="left")
    closed = pl.col("valid_to").is_not_null() & (pl.col("ts") >= pl.col("valid_to"))
    # older than anything its machine's intervals know (a value read at connect with its
    # old source time): the first context known, as the sample was stamped with it
    idx = df.select(pl.when(pl.col("iv").is_null()).then(pl.col("first_iv"))
                    .when(closed).then(None).otherwise(pl.col("iv")).alias("iv"))["iv"]
    name_s = pl.Series("tag_id", names, dtype=pl.String())
    cols = {c: iv[c].gather(idx) for c in CONTEXT}
    value = (pl.when(pl.col("quality") == 2).then(None).otherwise(pl.col("value"))
             .alias("value"))
    return df.with_columns(
        value, pl.from_epoch("ts", time_unit="us").dt.replace_time_zone("UTC"),
        pl.col("reason").replace_strict(reasons, default=None,
                                        return_dtype=pl.String()).alias("reason"),
        name_s.gather(df["rank"]).alias("tag_id"), *(v.alias(c) for c, v in cols.items()),
    ).select(COLUMNS).cast(OUT_SCHEMA)


def reason_texts(conn: Any) -> dict[int, str]:
    return {int(c): t for c, t in _rows(conn, "SELECT code, text FROM sample_reason")}


def narrow(store: Store, archive_dir: str | Path | None, tag_ids: Sequence[str],
           start: datetime, end: datetime
           ) -> tuple[pl.DataFrame, dict[str, tuple[int, str | None]], pl.DataFrame | None]:
    """Steps 1-2 of the read path: (narrow rows, tag map, legacy wide rows or None)."""
    lo, hi = to_us(start), to_us(end)
    with guard(store), store.engine.connect() as conn:
        tags = tag_numbers(conn, tag_ids)
        nums = [v[0] for v in tags.values()]
        rows, seen = hot_narrow(conn, nums, lo, hi)
    frames = [rows]
    legacy = None
    if archive_dir is not None:
        arch = archived_narrow(Path(archive_dir), nums, start, end, seen)
        if arch is not None and arch.height:
            frames.append(arch)
        legacy = _legacy(Path(archive_dir), tag_ids, start, end)
    return pl.concat(frames, how="vertical"), tags, legacy


def history(store: Store, archive_dir: str | Path | None, tag_ids: Sequence[str],
            start: datetime, end: datetime) -> pl.DataFrame:
    """Recent + chunked + archived samples of ``tag_ids`` in [start, end) as one frame."""
    tag_ids = list(dict.fromkeys(tag_ids))
    rows, tags, legacy = narrow(store, archive_dir, tag_ids, start, end)
    scopes = sorted({v[1] for v in tags.values() if v[1] is not None})
    with guard(store), store.engine.connect() as conn:
        ivals = intervals(conn, scopes, to_us(start), to_us(end))
        reasons = reason_texts(conn)
    df = contextualize(rows, tags, reasons, ivals)  # sorted by ts, then tag id
    if legacy is not None and legacy.height:
        df = pl.concat([legacy, df], how="vertical").sort(["ts", "tag_id"], maintain_order=True)
    return df


def _partials(lf: pl.LazyFrame, key: str, every: str) -> pl.LazyFrame:
    """Good values → (key, bucket, min, max, sum, count): partials that merge exactly."""
    return (lf.filter((pl.col("quality") == 0) & pl.col("value").is_not_null())
            .group_by(key, pl.col("ts").dt.truncate(every))
            .agg(pl.col("value").min().alias("min"), pl.col("value").max().alias("max"),
                 pl.col("value").sum().alias("sum"), pl.len().alias("count")))


def aggregate(store: Store, archive_dir: str | Path | None, tag_ids: Sequence[str],
              start: datetime, end: datetime, every: str = "1m") -> pl.DataFrame:
    """min/mean/max/count of Good values per tag per ``every`` bucket (a trend over weeks).

    No context join, and the archive is aggregated inside its scan (polars streams the
    files into per-bucket partials), so a month of one tag never becomes a frame of
    rows: tag_id, ts (bucket start), min, mean, max, count; sorted by tag, then ts.
    """
    tag_ids = list(dict.fromkeys(tag_ids))
    lo, hi = to_us(start), to_us(end)
    with guard(store), store.engine.connect() as conn:
        tags = tag_numbers(conn, tag_ids)
        nums = [v[0] for v in tags.values()]
        rows, seen = hot_narrow(conn, nums, lo, hi)
    as_ts = pl.from_epoch("ts", time_unit="us").dt.replace_time_zone("UTC")
    parts = [_partials(rows.lazy().with_columns(as_ts), "tag", every)]
    if archive_dir is not None:
        files = _dates(Path(archive_dir), "date=*", start, end) \
            if Path(archive_dir).exists() else []
        if files and nums:
            scan = (pl.scan_parquet(files, hive_partitioning=False)
                    .filter(pl.col("tag").is_in(nums) & (pl.col("ts") >= from_us(lo))
                            & (pl.col("ts") < from_us(hi))))
            if seen:
                scan = scan.filter(~pl.col("chunk").is_in(list(seen)))
            parts.append(_partials(scan.with_columns(pl.col("tag").cast(pl.Int64())),
                                   "tag", every))
    names = pl.DataFrame({"tag": [v[0] for v in tags.values()], "tag_id": list(tags)},
                         schema={"tag": pl.Int64(), "tag_id": pl.String()}).lazy()
    merged = [pl.concat(parts, how="vertical").join(names, on="tag").drop("tag")]
    legacy = _legacy(Path(archive_dir), tag_ids, start, end) if archive_dir else None
    if legacy is not None and legacy.height:
        merged.append(_partials(legacy.lazy(), "tag_id", every))
    cols = ["tag_id", "ts", "min", "max", "sum", "count"]
    return (pl.concat([m.select(cols) for m in merged], how="vertical")
            .group_by("tag_id", "ts")
            .agg(pl.col("min").min(), (pl.col("sum").sum() / pl.col("count").sum()).alias("mean"),
                 pl.col("max").max(), pl.col("count").sum().cast(pl.UInt32()))
            .sort(["tag_id", "ts"]).collect())


def latest(conn: Any, tag_ids: Sequence[str], n: int = 1, good_only: bool = False
           ) -> dict[str, list[tuple[datetime, float | None, str | None, int]]]:
    """The newest ``n`` samples of each tag (oldest first): (ts, value, text, quality).

    Recent rows are one scan (they have no tag index: they are few), older points come
    from the newest chunks of the tags still short of ``n``.
    """
    tags = tag_numbers(conn, list(tag_ids))
    if not tags:
        return {}
    name = {v[0]: k for k, v in tags.items()}
    nums = list(name)
    good = " AND quality = 0 AND value IS NOT NULL" if good_only else ""
    got: dict[int, list[tuple[int, float | None, str | None, int]]] = {k: [] for k in nums}
    if conn.dialect.name == "postgresql":  # a day of rows per tag: the newest n by index
        recent = _rows(conn, "SELECT t.num, x.ts, x.value, x.quality FROM unnest(?::int[]) "
                       "AS t(num) CROSS JOIN LATERAL (SELECT ts, value, quality FROM sample "
                       f"WHERE tag = t.num{good} ORDER BY ts DESC LIMIT ?) x", (nums, n))
    else:
        recent = _in(conn, "SELECT tag, ts, value, quality FROM sample WHERE tag IN ({marks})"
                     + good, nums)
    for tag, ts, value, quality in recent:
        got[int(tag)].append((int(ts), value, None, int(quality)))
    if not good_only:
        for num in nums:
            for ts, text, quality in _rows(conn, "SELECT ts, text, quality FROM sample_text "
                                           "WHERE tag = ? ORDER BY ts DESC LIMIT ?", (num, n)):
                got[num].append((int(ts), None, text, int(quality)))
    for num in nums:
        pts = got[num]
        if len(pts) >= n:
            continue
        for t0, blob in _rows(conn, "SELECT t0, data FROM sample_chunk WHERE tag = ? "
                              "ORDER BY t1 DESC LIMIT 64", (num,)):
            c = decode(blob, t0)
            for ts, v, q in zip(c.ts.tolist(), c.value.tolist(), c.quality.tolist(),
                                strict=True):
                v = None if v != v else v
                if good_only and (q != 0 or v is None):
                    continue
                pts.append((ts, v, None, q))
            if len(pts) >= n:
                break
    out = {}
    for num, pts in got.items():
        pts.sort(key=lambda p: p[0])
        out[name[num]] = [(from_us(ts), v, t, q) for ts, v, t, q in pts[-n:]]
    return out


def newest_ts(conn: Any) -> datetime | None:
    """The newest sample time in the store (recent rows, chunks, text samples)."""
    newest = "SELECT max(ts) FROM sample "
    if conn.dialect.name == "postgresql":  # max(ts) of a day partition is a scan: per tag
        newest = ("SELECT max(x.ts) FROM sample_tag t CROSS JOIN LATERAL (SELECT ts FROM "
                  "sample WHERE tag = t.num ORDER BY ts DESC LIMIT 1) x ")
    top = [r[0] for r in _rows(conn, newest +
                               "UNION ALL SELECT max(t1) FROM sample_chunk "
                               "UNION ALL SELECT max(ts) FROM sample_text") if r[0] is not None]
    return from_us(max(top)) if top else None
