"""The sample writer: rows written in one batch read back equal (through core.history),
in the caller's transaction; the tables hold them narrow."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

from core.history import COLUMNS, history
from core.samples import Context, ContextSample, Quality, Sample
from core.store.db import Store, exec_sql
from core.store.sample_writer import to_row, write_samples

T0 = datetime(2026, 1, 5, 6, 0, 0, tzinfo=UTC)


def _rows(n: int) -> list[dict]:
    rng = random.Random(3)
    out = []
    for i in range(n):
        q = rng.choice([Quality.GOOD] * 8 + [Quality.UNCERTAIN, Quality.BAD])
        out.append({
            "tag_id": f"A-LATHE1.t{i % 7}", "ts": T0 + timedelta(milliseconds=37 * i),
            "value": None if q == Quality.BAD else round(rng.uniform(-50, 50), 6),
            "text_value": None, "quality": int(q),
            "reason": "timeout" if q == Quality.BAD else None,
            "equipment_id": "A-LATHE1", "line_id": "A", "order_id": "PO-0001",
            "lot_id": f"L-0010{1 + i // 500}", "recipe_id": "R-SH20", "batch_id": "B-0001",
            "shift_id": "early", "operator_id": "olga",
        })
    return out


def _read(store: Store) -> list[dict]:
    with store.engine.connect() as conn:
        tags = [r[0] for r in exec_sql(conn, "SELECT tag_id FROM sample_tag")]
    far = datetime(2100, 1, 1, tzinfo=UTC)
    return history(store, None, tags, datetime(1970, 1, 1, tzinfo=UTC), far).to_dicts()


def _same(a: dict) -> dict:
    return {k: a.get(k) for k in COLUMNS}


def test_n_rows_written_read_back_equal(store: Store) -> None:
    rows = _rows(2000)
    with store.begin() as conn:
        assert write_samples(conn, rows) == 2000
    back = _read(store)
    assert back == [_same(r) for r in rows]  # values, qualities, context, aware UTC times
    assert back[5]["ts"].utcoffset() == timedelta(0)
    with store.engine.connect() as conn:  # narrow: 2000 number rows, 7 tags, 4 lots
        assert exec_sql(conn, "SELECT count(*) FROM sample").scalar() == 2000
        assert exec_sql(conn, "SELECT count(*) FROM sample_tag").scalar() == 7
        assert exec_sql(conn, "SELECT count(*) FROM context_interval").scalar() == 4


def test_samples_from_the_contextualizer(store: Store) -> None:
    ctx = Context(equipment_id="C-EXTR1", line_id="C", lot_id="L-00501", step="10")
    samples = [
        ContextSample("C-EXTR1.melt_temp", T0, 191.5, Quality.GOOD, None, ctx),
        ContextSample("C-EXTR1.state_text", T0, "running", Quality.GOOD, None, ctx),
        ContextSample("C-EXTR1.alarm", T0, True, Quality.GOOD, None, ctx),
        ContextSample("C-EXTR1.melt_temp", T0 + timedelta(seconds=1), None, Quality.BAD,
                      "exception code 2", ctx),
        Sample("plant.clock", T0, 7, Quality.UNCERTAIN, "stale"),
    ]
    with store.begin() as conn:
        assert write_samples(conn, samples) == 5
    back = {(r["tag_id"], r["ts"]): r for r in _read(store)}
    got = [back[(s.tag_id, s.source_ts)] for s in samples]
    assert [(r["value"], r["text_value"], r["quality"], r["reason"]) for r in got] == [
        (191.5, None, 0, None), (None, "running", 0, None), (1.0, None, 0, None),
        (None, None, 2, "exception code 2"), (7.0, None, 1, "stale")]
    assert [r["lot_id"] for r in got] == ["L-00501"] * 4 + [None]


def test_non_finite_and_bad_values_are_never_stored_as_numbers() -> None:
    row = to_row(Sample("x", T0, math.nan))
    assert (row[2], row[4], row[5]) == (None, 2, "non-finite value nan")
    assert to_row(Sample("x", T0, math.inf))[2] is None
    bad = to_row(Sample("x", T0, 12.5, Quality.BAD, "sensor open circuit"))
    assert (bad[2], bad[5]) == (None, "sensor open circuit")


def test_joins_the_callers_transaction(store: Store) -> None:
    conn = store.engine.connect()
    try:
        with conn.begin() as tx:
            write_samples(conn, _rows(10))
            tx.rollback()
    finally:
        conn.close()
    assert _read(store) == []
    with store.begin() as conn:
        assert write_samples(conn, []) == 0


def test_partial_dict_rows_get_defaults(store: Store) -> None:
    with store.begin() as conn:
        write_samples(conn, [{"tag_id": "A.x", "ts": T0, "value": 1.0},
                             {"tag_id": "A.y", "ts": T0, "text_value": "on", "quality": 1}])
    rows = _read(store)
    assert [(r["tag_id"], r["value"], r["text_value"], r["quality"], r["lot_id"])
            for r in rows] == [("A.x", 1.0, None, 0, None), ("A.y", None, "on", 1, None)]
