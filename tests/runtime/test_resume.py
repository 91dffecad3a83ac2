"""A twin restarted against a store that already has this hour's history goes on from
there: plant time never runs backwards, so nothing is counted twice."""

from __future__ import annotations

from datetime import timedelta

from core.clock import WallClock
from core.store.sample_writer import write_samples
from runtime.host import Runtime


def test_resume_time_follows_stored_history(store, loaded_config) -> None:  # type: ignore[no-untyped-def]
    rt = Runtime(loaded_config, store)
    assert rt._resume_time() is None  # empty store: the twin's own default start
    old = WallClock().now() - timedelta(days=2)
    with store.begin() as conn:
        write_samples(conn, [{"tag_id": "A-LATHE1.vibration_rms", "ts": old, "value": 1.0}])
    assert rt._resume_time() is None  # older than this hour: no overlap possible
    recent = WallClock().now().replace(microsecond=0) + timedelta(minutes=30)
    with store.begin() as conn:
        write_samples(conn, [{"tag_id": "A-LATHE1.vibration_rms", "ts": recent,
                              "value": 1.0}])
    assert rt._resume_time() == recent + timedelta(seconds=1)
