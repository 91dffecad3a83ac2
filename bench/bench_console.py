"""Console: start-up to the first screen, and key press to screen updated (p50/p99) under
5,000 samples/s + bus events, beside idle.

    python -m bench console [--seconds 20] [--rate 5000] [--events 200] [--view lines]
                            [--repeat 1] [--startup-rounds 3] [--startup-only] [--json]

Start-up (bench/startup.py): `loopline tui --demo` (what `make run` starts) in its own
process on an 80×24 pseudo-terminal, timed from spawning it to its Lines view first drawn
with the store's plant, on a fresh store (the first run) and on the store the previous
round left; the raw baseline is a bare Textual app started the same way in the same run.

One headless console (Textual ``run_test``) on a fresh store with the default plant,
refreshing from the store every 0.5 s as in production. A writer thread inserts
``--rate`` samples/s (2,000 tags, batches every 100 ms) through the store's sample
writer and publishes ``--events`` engine events/s on the bus the console follows.
A key press (down/up in the ``--view`` table: lines, or the event log the bus fills)
is sent as the terminal driver sends it and timed until the repaint after the cursor
moved (``call_after_refresh``).
The raw baseline is the same measurement in the same run on the same app with no load
(``--seconds``/2 before each loaded phase). With ``--repeat N`` the idle/loaded pair is
measured N times and the medians of the rounds' percentiles are reported, with the
loaded/idle ratio (machines are noisy; the ratio is the figure to compare across runs).
RSS is read before the first loaded phase and after the last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from console.app import AppDeps, LooplineApp, create_app
from core.clock import WallClock
from core.config import load_config
from core.events import DetectionEvent, EventBus
from core.masterdata import load_master_data
from core.store.db import open_store
from core.store.sample_writer import write_samples

REPO = Path(__file__).resolve().parent.parent
TAGS = 2000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


class Load(threading.Thread):
    """Writes samples at a fixed rate and publishes events, counting what it managed."""

    def __init__(self, store, bus: EventBus, rate: int, events: int) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.store, self.bus, self.rate, self.events = store, bus, rate, events
        self.stop = threading.Event()
        self.written = self.published = 0
        self.eq = ["A-LATHE1", "A-MILL1", "B-MOLD1", "C-EXTR1"]

    def run(self) -> None:
        tick, per = 0.1, max(1, int(self.rate * 0.1))
        ev_per = max(0, int(self.events * 0.1))
        t_next = time.perf_counter()
        i = 0
        while not self.stop.is_set():
            now = datetime.now(UTC)
            rows = [{"tag_id": f"{self.eq[k % 4]}.vibration_rms" if k % 50 == 0
                     else f"bench.t{k % TAGS:04d}", "ts": now + timedelta(microseconds=k),
                     "value": float((i + k) % 97), "quality": 0} for k in range(per)]
            with self.store.begin() as conn:
                self.written += write_samples(conn, rows)
            for k in range(ev_per):
                self.bus.publish(DetectionEvent(now, f"bench detection {i}.{k}",
                                                equipment_id=self.eq[k % 4]))
                self.published += 1
            i += 1
            t_next += tick
            time.sleep(max(0.0, t_next - time.perf_counter()))


async def measure(app: LooplineApp, seconds: float) -> list[float]:
    """Send a key as the terminal driver would; stop the clock after the repaint that
    follows the table's cursor moving (``call_after_refresh``)."""
    from textual import events

    table = app.table
    driver = app._driver
    assert driver is not None
    out: list[float] = []
    end = time.perf_counter() + seconds
    k = 0
    while time.perf_counter() < end:
        before = table.cursor_row
        key = "down" if k % 2 == 0 else "up"
        ev = events.Key(key, None)
        ev.set_sender(app)
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        t = time.perf_counter()
        driver.send_message(ev)
        while table.cursor_row == before:
            await asyncio.sleep(0.0005)
        app.call_after_refresh(lambda f=done: f.done() or f.set_result(time.perf_counter()))
        out.append((await done - t) * 1000)
        k += 1
        await asyncio.sleep(0.03)
    return out


async def fill_event_log(app: LooplineApp, bus: EventBus, pilot) -> None:  # type: ignore[no-untyped-def]
    """Open the event log with a full backlog, so the cursor has rows to move over."""
    now = datetime.now(UTC)
    for i in range(300):
        bus.publish(DetectionEvent(now, f"bench backlog {i}", equipment_id="A-LATHE1"))
    app.show_view("events")
    while app.table.row_count < 300:
        await pilot.pause(0.05)


async def run(seconds: float, rate: int, events: int, view: str = "lines",
              repeat: int = 1) -> dict[str, object]:
    loaded = load_config(REPO / "config.toml")
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "bench.db"))
        load_master_data(store, loaded, WallClock())
        bus = EventBus()
        app = create_app(AppDeps(config=loaded, engine=store.engine, clock=WallClock(),
                                 bus=bus, store=store, sign_in_at_start=False,
                                 refresh_s=loaded.config.console.refresh_ms / 1000))
        rounds: list[dict[str, float]] = []
        written = published = 0
        took = 0.0
        busy: list[float] = []
        idle: list[float] = []
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await app.workers.wait_for_complete()
            if view == "events":
                await fill_event_log(app, bus, pilot)
            rss0 = float("nan")
            for _ in range(repeat):
                idle_r = await measure(app, seconds / 2)
                if not rounds:
                    rss0 = rss_mb()
                load = Load(store, bus, rate, events)
                t0 = time.perf_counter()
                load.start()
                busy_r = await measure(app, seconds)
                load.stop.set()
                load.join()
                took += time.perf_counter() - t0
                written += load.written
                published += load.published
                await app.workers.wait_for_complete()
                busy += busy_r
                idle += idle_r
                rounds.append({"loaded_p50_ms": pct(busy_r, 0.5),
                               "loaded_p99_ms": pct(busy_r, 0.99),
                               "idle_p50_ms": pct(idle_r, 0.5), "idle_p99_ms": pct(idle_r, 0.99)})
            rss1 = rss_mb()
        store.close()

    def med(key: str) -> float:
        return round(statistics.median(r[key] for r in rounds), 1)

    def ratio(a: str, b: str) -> float:
        return round(statistics.median(r[a] / r[b] for r in rounds), 2)

    return {
        "view": view, "seconds": seconds, "repeat": repeat,
        "presses_loaded": len(busy), "presses_idle": len(idle),
        "samples_per_s": round(written / took), "events_per_s": round(published / took),
        "loaded_p50_ms": med("loaded_p50_ms"), "loaded_p99_ms": med("loaded_p99_ms"),
        "idle_p50_ms": med("idle_p50_ms"), "idle_p99_ms": med("idle_p99_ms"),
        "p50_ratio": ratio("loaded_p50_ms", "idle_p50_ms"),
        "p99_ratio": ratio("loaded_p99_ms", "idle_p99_ms"),
        "loaded_mean_ms": round(statistics.fmean(busy), 1) if busy else None,
        "rounds": [{k: round(v, 1) for k, v in r.items()} for r in rounds],
        "rss_before_mb": round(rss0, 1), "rss_after_mb": round(rss1, 1),
        "target_p99_ms": 50,
    }


def print_table(r: dict[str, object]) -> None:
    rounds = f", median of {r['repeat']} rounds" if r["repeat"] != 1 else ""
    print(f"key press -> screen updated on the {r['view']} view, {r['seconds']} s loaded "
          f"({r['samples_per_s']} samples/s, {r['events_per_s']} events/s on the bus{rounds})")
    print(f"{'':28}{'p50 ms':>10}{'p99 ms':>10}{'presses':>10}")
    print(f"{'console under load':28}{r['loaded_p50_ms']:>10}{r['loaded_p99_ms']:>10}"
          f"{r['presses_loaded']:>10}")
    print(f"{'raw baseline (no load)':28}{r['idle_p50_ms']:>10}{r['idle_p99_ms']:>10}"
          f"{r['presses_idle']:>10}")
    print(f"{'loaded / baseline':28}{r['p50_ratio']:>9}x{r['p99_ratio']:>9}x")
    print(f"target p99 <= {r['target_p99_ms']} ms; RSS {r['rss_before_mb']} MB before the load, "
          f"{r['rss_after_mb']} MB after")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench console", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=int, default=5000, help="samples per second")
    ap.add_argument("--events", type=int, default=200, help="bus events per second")
    ap.add_argument("--view", choices=("lines", "events"), default="lines",
                    help="the table the keys move in")
    ap.add_argument("--repeat", type=int, default=1, help="idle/loaded rounds (medians)")
    ap.add_argument("--startup-rounds", type=int, default=3,
                    help="start-up measurements (medians; 0 skips them)")
    ap.add_argument("--startup-only", action="store_true",
                    help="only the start-up figures, not the key-press load test")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from bench.startup import measure as measure_startup

    startup = measure_startup(args.startup_rounds) if args.startup_rounds > 0 else None
    if startup is not None and not args.json:
        print_startup(startup)
    if args.startup_only:
        if args.json:
            print(json.dumps({"startup": startup}, indent=2))
        return 0
    report = asyncio.run(run(args.seconds, args.rate, args.events, args.view,
                             max(1, args.repeat)))
    if args.json:
        print(json.dumps({**report, "startup": startup}, indent=2))
    else:
        print_table(report)
    return 0


def print_startup(r: dict[str, object]) -> None:
    print(f"start-up: process start -> Lines view drawn (80x24 pty, median of "
          f"{r['rounds']} rounds)")
    print(f"{'loopline tui --demo, fresh store':36}{r['console_fresh_store_s']:>8} s")
    print(f"{'loopline tui --demo, existing store':36}{r['console_warm_store_s']:>8} s")
    print(f"{'raw baseline: bare Textual app':36}{r['bare_textual_s']:>8} s")
    print(f"target <= {r['target_s']:g} s")
    print()


if __name__ == "__main__":
    sys.exit(main())
