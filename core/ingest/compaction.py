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
import sqlite3

from core.store.chunks import HOUR_US, encode

INSERT_CHUNK = "INSERT INTO sample_chunk (tag, t0, t1, n, data) VALUES (?, ?, ?, ?, ?)"


def chunk_rows(tag, ts, value, quality, reason):  # type: ignore[no-untyped-def]
    """Columns (any order) to ``sample_chunk`` rows, one per (tag, hour)."""
    import numpy as np

    order = np.lexsort((ts, ts // HOUR_US, tag))
    tag, ts = tag[order], ts[order]
    value, quality, reason = value[order], quality[order], reason[order]
    key = tag * 1_000_000 + ts // HOUR_US
    cut = np.flatnonzero(np.diff(key)) + 1
    bounds = [0, *cut.tolist(), len(ts)]
    out = []
    for i, j in itertools.pairwise(bounds):
        out.append((int(tag[i]), int(ts[i]), int(ts[j - 1]), j - i,
                    encode(ts[i:j], value[i:j], quality[i:j], reason[i:j])))
    return out


def compact(con: sqlite3.Connection, mark: int | None = None) -> tuple[int, int]:
    """Move rows with id <= mark (all rows when None) into chunks; returns (moved, left).

    ``con`` is an autocommit sqlite3 connection; the work is one BEGIN IMMEDIATE.
    """
    import numpy as np

    con.execute("BEGIN IMMEDIATE")
    try:
        top = mark if mark is not None else con.execute("SELECT max(id) FROM sample").fetchone()[0]
        moved = 0
        if top:
            rows = con.execute("SELECT tag, ts, ifnull(value, 9e999), quality, "
                               "ifnull(reason, -1) FROM sample WHERE id <= ?", (top,)).fetchall()
            if rows:
                a = np.array(rows, dtype=np.float64)
                value = a[:, 2].copy()
                value[np.isinf(value)] = np.nan
                chunks = chunk_rows(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), value,
                                    a[:, 3].astype(np.uint8), a[:, 4].astype(np.int32))
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
