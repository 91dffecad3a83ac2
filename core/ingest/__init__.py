"""Contextual ingest: driver samples to contextualized, durable history.

- ``contextualizer.Contextualizer`` stamps samples with each equipment's production
  context (dict lookups only) and reports context changes as events.
- ``writer.StoreWriter`` persists them from its own thread with store-and-forward
  (on-disk spill), poison-row quarantine and exact counters.
- ``rollups`` keeps 1-minute per-tag aggregates; ``archive`` moves rows older than
  the hot window to Parquet (``core.history`` reads both as one frame).
- ``pipeline.IngestPipeline`` wires them (plus ``core.production``) from the config
  for the runtime: ``handle`` on the event loop, ``maintain`` in a worker thread.
"""
