"""The ingest pipeline end to end on a real store: samples to rows, facts, archive."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from ingest_helpers import T0, rows, sample

from core.clock import FrozenClock
from core.config import LoadedConfig
from core.history import history
from core.ingest.contextualizer import ContextChange
from core.ingest.pipeline import IngestPipeline
from core.store.db import Store


def test_pipeline_samples_facts_and_archive(store: Store, loaded_config: LoadedConfig,
                                            frozen_clock: FrozenClock, tmp_path: Path) -> None:
    loaded_config.config.store.spill_dir = str(tmp_path / "spill")
    loaded_config.config.store.archive_dir = str(tmp_path / "history")
    db = store.target
    pipe = IngestPipeline(loaded_config, store, frozen_clock, flush_ms=20).start()
    seen: list[ContextChange] = []
    pipe.contextualizer.subscribe(seen.extend)
    eq = "C-PRESS1"
    pipe.handle([sample(f"{eq}.lot", 0, 501), sample(f"{eq}.state", 0, 1),
                 sample(f"{eq}.good_count", 0, 10), sample(f"{eq}.vibration_rms", 1, 2.0)])
    pipe.handle([sample(f"{eq}.state", 120, 6), sample(f"{eq}.vibration_rms", 121, 2.2),
                 sample(f"{eq}.good_count", 240, 25)])  # 15 parts at a 20 s ideal cycle
    assert pipe.writer.drain(30)
    rep = pipe.maintain(archive=False)
    assert rep.errors == [] and rep.production_rows > 0
    assert [c.new for c in seen if c.field == "lot_id"] == ["L-00501"]
    h = history(store, None, [f"{eq}.vibration_rms"], T0, T0 + timedelta(hours=1))
    assert h.select("value", "lot_id", "order_id").rows() == [
        (2.0, "L-00501", "PO-0005"), (2.2, "L-00501", "PO-0005")]
    assert rows(db, "SELECT sum(good) FROM production_count") == [(15,)]
    assert rows(db, "SELECT state, \"end\" IS NULL FROM equipment_state_interval "
                "ORDER BY id") == [("running", 0), ("blocked", 1)]
    # two days later the morning's rows move to the archive; history still has them
    frozen_clock.advance(48 * 3600)
    rep = pipe.maintain(archive=True)
    assert rep.archived_rows == 7
    assert rows(db, "SELECT count(*) FROM sample") == [(0,)]
    h = history(store, tmp_path / "history", [f"{eq}.vibration_rms"], T0,
                T0 + timedelta(hours=1))
    assert h["value"].to_list() == [2.0, 2.2] and h["lot_id"].to_list() == ["L-00501"] * 2
    final = pipe.close()
    assert final["balanced"] and final["stored"] == 7 and final["dropped"] == 0
