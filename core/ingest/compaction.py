"""Compaction: recent narrow rows (arrival order) into per-tag, per-hour chunks.

The insert path appends to ``sample`` in arrival order (one b-tree place per batch);
reads want one tag's samples together. Compaction takes every recent row up to a
mark, sorts them by (tag, hour, time), encodes each group as one ``sample_chunk``
block and deletes the rows, all in one transaction: a crash leaves either the rows or
the chunks, never both or neither. Chunks are never rewritten; late samples make
another chunk of the same hour, and readers merge them.
"""

from __future__ import annotations

import itertools

from core.store.chunks import HOUR_US, encode
from core.store.raw import RawConnection

INSERT_CHUNK = "INSERT INTO sample_chunk (tag, t0, t1, n, data) VALUES (?, ?, ?, ?, ?)"


def chunk_rows(tag, ts, value, quality, reason):  # type: ignore[no-untyped-def]
    """Columns (any order) to ``sample_chunk`` rows, one per (tag, hour)."""
    import numpy as np

    order = np.lexsort((ts, ts // HOUR_US, tag))
    tag, ts = tag[order], ts[order]
    value = value[order].astype(np.float64)
    quality, reason = quality[order].astype(np.uint8), reason[order].astype(np.int32)
    key = tag * 1_000_000 + ts // HOUR_US
    cut = np.flatnonzero(np.diff(key)) + 1
    bounds = [0, *cut.tolist(), len(ts)]
    out = []
    for i, j in itertools.pairwise(bounds):
        out.append((int(tag[i]), int(ts[i]), int(ts[j - 1]), j - i,
                    encode(ts[i:j], value[i:j], quality[i:j], reason[i:j])))
    return out


def compact(con: RawConnection, mark: int | None = None,
            known: tuple[int, list[tuple[object, ...]]] | None = None) -> tuple[int, int]:
    """Move rows with id <= mark (all rows when None) into chunks; returns (moved, left).

    ``con`` is an autocommit connection (``core.store.raw``); the work is one BEGIN
    IMMEDIATE.
    ``known`` is ``(first id, rows)``: the writer's own copy of the recent rows (tag, ts,
    value, quality, reason) in id order from ``first id``, used instead of reading them
    back when the table holds exactly those ids (checked in the transaction).
    """
    import numpy as np

    con.execute("BEGIN IMMEDIATE")
    try:
        top = mark if mark is not None else con.execute("SELECT max(id) FROM sample").fetchone()[0]
        moved = 0
        if top:
            rows: list[tuple[object, ...]] | None = None
            if known is not None and known[1]:
                first, mine = known
                k = min(top - first + 1, len(mine))
                n, lo = con.execute("SELECT count(*), min(id) FROM sample WHERE id <= ?",
                                    (top,)).fetchone()
                if k > 0 and n == k and lo == first:
                    rows = mine[:k]
            if rows is None:
                rows = con.execute("SELECT tag, ts, value, quality, reason FROM sample "
                                   "WHERE id <= ?", (top,)).fetchall()
            if rows:
                a = np.array(rows, dtype=np.float64)  # None → NaN
                reason = a[:, 4]
                reason[np.isnan(reason)] = -1
                chunks = chunk_rows(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64),
                                    a[:, 2], a[:, 3].astype(np.uint8), reason.astype(np.int32))
                del a
                con.executemany(INSERT_CHUNK, chunks)
                con.execute("DELETE FROM sample WHERE id <= ?", (top,))
                moved = len(rows)
        left = con.execute("SELECT count(*) FROM sample").fetchone()[0]
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    return moved, int(left)
