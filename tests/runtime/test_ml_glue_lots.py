"""Lot-level scores keep the lot's context on their way to the detectors."""

from __future__ import annotations

import polars as pl

from runtime.ml_glue import scores_from_frame


def test_a_lot_score_frame_maps_each_lot_to_its_context() -> None:
    frame = pl.DataFrame({"lot_id": ["L-00101", "L-00102"], "order_id": ["PO-0001"] * 2,
                          "equipment_id": ["A-LATHE1", None], "line_id": ["A", "A"],
                          "batch_id": ["B-0001", "B-0002"], "low_data": [False, False],
                          "score": [0.8, 0.1]})
    got = scores_from_frame(frame)
    assert set(got) == {"L-00101", "L-00102"}
    s = got["L-00101"]
    assert s.value == 0.8 and s.line_id == "A"
    assert dict(s.context) == {"lot_id": "L-00101", "equipment_id": "A-LATHE1",
                               "line_id": "A", "order_id": "PO-0001", "batch_id": "B-0001"}
    assert "equipment_id" not in got["L-00102"].context  # unknown stays unknown
    eq = scores_from_frame(pl.DataFrame({"equipment_id": ["A-MILL1"], "low_data": [False],
                                         "score": [0.4]}))
    assert set(eq) == {"A-MILL1"} and dict(eq["A-MILL1"].context) == {}
