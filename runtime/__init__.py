"""The plant host: the twin launcher, drivers, ingest, detection, the engine and the ML
jobs wired on one asyncio loop (``runtime.host.Runtime``), used by the console, the
headless mode, the evaluation and the benches. Never imports console/ or textual."""
