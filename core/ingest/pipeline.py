"""The ingest pipeline the runtime hosts: driver samples in, durable contextual history out.

One object wires the parts with the config's [store] settings::

    pipe = IngestPipeline(loaded, store, clock).start()
    # on the event loop, from the driver sink (no I/O, never blocks):
    pipe.handle(samples)
    # every few seconds, off the loop: asyncio.to_thread(pipe.maintain)
    report = pipe.maintain()
    pipe.close()  # drains the writer, flushes production facts

``handle`` marks a value its tag's data type cannot hold Bad (``ValueCheck``) and
samples older than their tag's newest Uncertain (``TimeOrder``, whose
clock jumps the runtime raises as alarms), stamps them (``Contextualizer``), queues them for the
``StoreWriter`` thread and feeds the ``ProductionTracker`` (in memory). ``maintain``
does the blocking work: production facts to the store, a context refresh from the
store (lots moved by people or the engine, operations dispatched from the MES side:
``core.dispatch``), and the Parquet archive pass when due.
Context changes (lot starts/ends, shift changes) reach ``on_context_change``
listeners added with ``pipe.contextualizer.subscribe``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.clock import Clock
from core.config import LoadedConfig
from core.counters import CounterNote
from core.dispatch import current_dispatch
from core.ingest.archive import Archiver, ArchiveReport
from core.ingest.contextualizer import Contextualizer, snapshot_from_store
from core.ingest.deadband import HistoryFilter, bands_from_tags
from core.ingest.lots import register_lots
from core.ingest.time_order import TimeOrder
from core.ingest.value_check import ValueCheck
from core.ingest.writer import StoreWriter
from core.production import ProductionTracker
from core.samples import ContextSample, Sample
from core.store.db import Store
from core.vision import VisionTracker

log = logging.getLogger(__name__)


@dataclass
class MaintenanceReport:
    production_rows: int = 0
    archived_rows: int = 0
    lots_created: int = 0
    lots_moved: int = 0
    inspections: int = 0
    errors: list[str] | None = None


class IngestPipeline:
    """Contextualizer + store writer + production tracker + archive, from the config."""

    def __init__(self, loaded: LoadedConfig, store: Store, clock: Clock, *,
                 archive_every_s: float = 600.0, **writer_kw: Any) -> None:
        self.loaded, self.store, self.clock = loaded, store, clock
        self.contextualizer = Contextualizer(loaded.tags, context_source={
            eq.id: eq.context_source or ln.context_source
            for ln in loaded.config.lines for eq in ln.equipment})
        self.time_order = TimeOrder()
        self.value_check = ValueCheck(loaded.tags)
        # a fast twin's timestamps jitter by (wall jitter x speed): half a wall second of it
        # is grace for the counters' plausibility cap
        speed = float(getattr(clock, "speed", 1.0))
        self.tracker = ProductionTracker(loaded.tags, ideal_cycle_s={
            eq.id: eq.ideal_cycle_s for ln in loaded.config.lines for eq in ln.equipment},
            rate_grace_s=max(5.0, 0.5 * speed))
        self.vision = VisionTracker(loaded.tags)  # vision tags' readings → inspections
        kw = {"queue_max": loaded.config.store.queue_max,
              "flush_ms": loaded.config.store.flush_ms,
              "batch_rows": loaded.config.store.batch_rows, **writer_kw}
        self.writer = StoreWriter(store.target, loaded.spill_dir, **kw)
        self.history_filter = HistoryFilter(bands_from_tags(loaded.tags))
        self.archiver = Archiver(store.target, loaded.archive_dir)
        self.hot_window_h = loaded.config.store.hot_window_h
        self.archive_every_s = archive_every_s
        self._last_archive = time.monotonic()
        self.last_archive: ArchiveReport | None = None

    def start(self) -> IngestPipeline:
        """Context and open intervals from the store, then the writer (forwarding old spill)."""
        self.contextualizer.refresh(self.store, now=self.clock.now())
        self._apply_dispatch()
        self.tracker.load(self.store)
        self.vision.load(self.store)
        self.writer.start()
        return self

    def handle(self, samples: Sequence[Sample]) -> list[ContextSample]:
        """Stamp, queue for the store, track production; no I/O. Returns the stamped batch."""
        stamped = self.contextualizer.stamp(
            self.time_order.check(self.value_check.check(samples), self.clock.now()))
        hf = self.history_filter
        kept = self.vision.changed_only(stamped)
        self.writer.submit(hf.filter(kept) if hf else kept)
        self.tracker.process(stamped)
        self.vision.process(stamped)
        return stamped

    def _apply_dispatch(self) -> None:
        """Operations people dispatched (CLI, console, any process: through the store)."""
        if self.uses_dispatch:
            self.contextualizer.apply_dispatch(current_dispatch(self.store), self.clock.now())

    @property
    def uses_dispatch(self) -> bool:
        return any((eq.context_source or ln.context_source) != "device"
                   for ln in self.loaded.config.lines for eq in ln.equipment)

    def drain_counter_notes(self) -> list[CounterNote]:
        """Counter wraps, restarts and refused readings since the last call (no I/O)."""
        return self.tracker.drain_notes()

    def maintain(self, *, archive: bool | None = None) -> MaintenanceReport:
        """Blocking upkeep (run it in a worker thread): facts, context refresh, archive."""
        rep = MaintenanceReport(errors=[])
        assert rep.errors is not None
        try:
            lots = register_lots(self.store, self.contextualizer.drain_changes(),
                                 self.contextualizer.contexts(), self.clock.now())
            rep.lots_created, rep.lots_moved = lots.created, lots.moved
        except Exception as e:
            rep.errors.append(f"lots: {e}")
        try:
            rep.production_rows = self.tracker.flush(self.store)
        except Exception as e:  # kept in memory for the next pass
            rep.errors.append(f"production facts: {e}")
        try:
            rep.inspections = self.vision.flush(self.store)
        except Exception as e:  # kept in memory for the next pass
            rep.errors.append(f"inspections: {e}")
        try:
            self.contextualizer.apply_snapshot(snapshot_from_store(self.store), self.clock.now())
            self._apply_dispatch()
        except Exception as e:
            rep.errors.append(f"context refresh: {e}")
        due = time.monotonic() - self._last_archive >= self.archive_every_s
        if archive or (archive is None and due):
            self._last_archive = time.monotonic()
            try:
                self.writer.compact_now()  # rows rolled up and in chunks: the archive moves chunks
                self.last_archive = self.archiver.run(self.clock.now(), self.hot_window_h)
                rep.archived_rows = self.last_archive.rows
            except Exception as e:
                rep.errors.append(f"archive: {e}")
        for err in rep.errors:
            log.warning("ingest upkeep: %s", err)
        return rep

    def stats(self) -> dict[str, Any]:
        """Counters for the events stream and the UI."""
        return {**self.writer.stats.as_dict(), "balanced": self.writer.stats.balanced,
                "stamped": self.contextualizer.stamped,
                "history_filtered": self.history_filter.dropped,
                "out_of_order": self.time_order.flagged, "clock_jumps": self.time_order.jumps,
                "wrong_type": self.value_check.refused,
                "production_pending": self.tracker.pending,
                "inspections": self.vision.stats.inspections,
                "inspections_missed": self.vision.stats.missed,
                "vision_repeats": self.vision.stats.repeats,
                "inspections_pending": self.vision.pending}

    def close(self, timeout: float = 60.0) -> dict[str, Any]:
        """Drain the writer and write the last production facts; returns final stats."""
        self.writer.submit(self.history_filter.flush())
        self.writer.close(timeout)
        try:
            self.tracker.flush(self.store)
        except Exception as e:
            log.error("final production facts not written: %s", e)
        try:
            self.vision.flush(self.store)
        except Exception as e:
            log.error("final inspections not written: %s", e)
        return self.stats()
