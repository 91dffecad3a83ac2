"""`loopline run --headless`: the runtime without a UI, for scripts and schedulers.

Events go out as JSON lines (one object per line, each with a UTC ``ts`` and a
``kind``) to ``--events PATH`` or ``-`` for stdout. On a terminal a one-line progress
display runs on stderr. SIGINT/SIGTERM or the end of ``--duration`` stop it cleanly:
the store writer drains, the twin stops, and a ``summary`` event closes the stream.
Exit 0 on a clean stop, 1 when the runtime could not start or failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import IO, Any

from console.commands.common import UserError
from core.events import EngineEvent


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the runtime without UI: JSON lines of events "
                       "(loopline run --headless)")
    p.add_argument("--headless", action="store_true",
                   help="run without the console (required; plain `loopline` opens it)")
    p.add_argument("--duration", metavar="S", help="wall-clock run time, e.g. 60, 10m, 2h "
                   "(default: until SIGINT/SIGTERM)")
    p.add_argument("--speed", type=float, help="twin speed, 1..3600 (default: [simulator])")
    p.add_argument("--seed", type=int, help="twin random seed (default: [simulator])")
    p.add_argument("--inject", action="append", default=[], metavar="KIND:EQUIPMENT@T[~F]",
                   help="fault for the twin at twin time T, e.g. bearing:A-LATHE1@2h; ~F "
                   "starts a wear fault F of its way to failure (bearing:A-LATHE1@0~0.9)")
    p.add_argument("--faults-per-day", type=float, metavar="N",
                   help="the twin's random fault rate (default: [simulator])")
    p.add_argument("--truth", metavar="PATH", help="the twin's ground-truth log (JSON lines)")
    p.add_argument("--events", metavar="PATH|-", default=None,
                   help="where the JSON lines go: a file, or - for stdout (default: -)")
    p.add_argument("--approve", choices=("never", "auto", "policy"), default="policy",
                   help="policy: execute what [autonomy] marks auto, leave the rest pending "
                   "(default); auto: approve every recommendation; never: approve nothing")
    p.add_argument("--opcua-port", type=int, metavar="P",
                   help="port for the twin's OPC UA server (default: [simulator])")
    p.add_argument("--modbus-port", type=int, metavar="P",
                   help="port for the twin's Modbus server (default: [simulator])")
    p.add_argument("--no-sim", action="store_true",
                   help="do not start the plant twin even if the config enables it")
    p.add_argument("--no-ml", action="store_true", help="do not run the ML scoring jobs")
    p.add_argument("--stats-every", type=float, default=5.0, metavar="S",
                   help="wall seconds between stats events (default 5)")
    p.add_argument("--quiet", action="store_true", help="no progress display on stderr")
    add_lines_args(p)
    p.set_defaults(func=run_headless)


def add_lines_args(p: argparse.ArgumentParser) -> None:
    """--lines and the lease options (also the console's)."""
    p.add_argument("--lines", metavar="A[,B]",
                   help="run only these lines (their drivers, detection and actions) and "
                   "own them in the store; other runtimes own the rest (default: all lines)")
    p.add_argument("--lease-ttl", type=float, default=None, metavar="S",
                   help="seconds a line stays ours without a heartbeat; a runtime that dies "
                   "frees its lines after this (default 30)")
    p.add_argument("--wait-for-lines", type=float, default=0.0, metavar="S",
                   help="wait up to S seconds for lines another runtime holds to be freed "
                   "(default: refuse at once)")


def lines_opts(args: argparse.Namespace, loaded: Any) -> dict[str, Any]:
    """RuntimeOptions fields from --lines/--lease-ttl/--wait-for-lines (UserError if bad)."""
    out: dict[str, Any] = {}
    raw = getattr(args, "lines", None)
    if raw is not None:
        lines = [x.strip() for x in str(raw).split(",") if x.strip()]
        known = [ln.id for ln in loaded.config.lines]
        unknown = [x for x in lines if x not in known]
        if not lines or unknown:
            raise UserError(f"--lines {raw!r}: no line {', '.join(unknown) or '(none given)'} "
                            f"in the config (lines: {', '.join(known)})")
        out["lines"] = lines
    ttl = getattr(args, "lease_ttl", None)
    if ttl is not None:
        if not 0.5 <= ttl <= 3600:
            raise UserError(f"--lease-ttl {ttl:g}: give 0.5..3600 seconds")
        out["lease_ttl_s"] = ttl
    wait = getattr(args, "wait_for_lines", 0.0) or 0.0
    if not 0 <= wait <= 86400:
        raise UserError(f"--wait-for-lines {wait:g}: give 0..86400 seconds")
    out["lease_wait_s"] = wait
    return out


class JsonLines:
    """A bus subscriber writing one JSON object per line; safe from any thread."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.count = 0

    def __call__(self, ev: EngineEvent) -> None:
        line = ev.to_json()
        with self.lock:
            self.out.write(line + "\n")
            self.out.flush()
            self.count += 1


class Progress:
    """One status line on stderr (rich), refreshed from stats events."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.status = self.console.status("starting the runtime…")
        self.status.start()
        self.counts: dict[str, int] = {}

    def __call__(self, ev: EngineEvent) -> None:
        self.counts[ev.kind] = self.counts.get(ev.kind, 0) + 1
        if ev.kind != "stats":
            return
        d: dict[str, Any] = ev.detail
        ing = d.get("ingest", {})
        seen = "  ".join(f"{k} {v}" for k, v in sorted(self.counts.items())
                         if k not in ("stats", "runtime"))
        self.status.update(f"plant {d.get('plant_time', '')[:19]}  samples {d.get('samples', 0):,}"
                           f"  stored {ing.get('stored', 0):,}  {seen}")

    def stop(self) -> None:
        self.status.stop()


def run_headless(args: argparse.Namespace) -> int:
    from console.commands.common import open_cli_store
    from console.commands.config_cmd import checked_config
    from core.events import EventBus
    from core.store import StoreError
    from runtime.commissioning import DriverError
    from runtime.host import Runtime, RuntimeError_, RuntimeOptions
    from sim.args import SimUsageError, parse_duration, parse_inject

    if not args.headless:
        raise UserError("`loopline run` needs --headless (the console is plain `loopline`)")
    try:
        duration = parse_duration(args.duration) if args.duration else None
        for spec in args.inject:
            parse_inject(spec)
    except SimUsageError as e:
        raise UserError(str(e)) from None
    if args.speed is not None and not 1 <= args.speed <= 3600:
        raise UserError(f"--speed {args.speed:g} is out of range 1..3600")
    if args.faults_per_day is not None and not 0 <= args.faults_per_day <= 1000:
        raise UserError(f"--faults-per-day {args.faults_per_day:g}: give 0..1000")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    checked_config(args.config, args.db)  # what `config check` finds, before anything starts
    loaded, store = open_cli_store(args)
    try:
        scoped = lines_opts(args, loaded)
    except UserError:
        store.close()
        raise
    bus = EventBus()
    out: IO[str]
    close_out = False
    if args.events in (None, "-"):
        out = sys.stdout
    else:
        try:
            out = Path(args.events).open("a", encoding="utf-8")  # noqa: SIM115 closed below
        except OSError as e:
            raise UserError(f"cannot write events to {args.events}: {e.strerror}") from None
        close_out = True
    writer = JsonLines(out)
    bus.subscribe(writer)
    progress = Progress() if (sys.stderr.isatty() and not args.quiet) else None
    if progress is not None:
        bus.subscribe(progress)
    opts = RuntimeOptions(speed=args.speed, seed=args.seed, inject=list(args.inject),
                          truth=Path(args.truth) if args.truth else None,
                          approve=args.approve, spawn_twin=False if args.no_sim else None,
                          ml=not args.no_ml, stats_every_s=args.stats_every,
                          opcua_port=args.opcua_port, modbus_port=args.modbus_port,
                          twin_args=[] if args.faults_per_day is None
                          else ["--faults-per-day", f"{args.faults_per_day:g}"], **scoped)
    rt = Runtime(loaded, store, opts, bus=bus)
    try:
        summary = asyncio.run(_main(rt, duration))
    except (RuntimeError_, StoreError, DriverError) as e:
        print(f"loopline: {e}", file=sys.stderr)
        return 1
    finally:
        if progress is not None:
            progress.stop()
        store.close()
        if close_out:
            out.close()
    if progress is not None or args.events not in (None, "-"):
        print(_summary_text(summary), file=sys.stderr)
    if summary.get("fatal"):
        print(f"loopline: stopped: {summary['fatal']}", file=sys.stderr)
        return 1
    return 0


async def _main(rt: Any, duration: float | None) -> dict[str, Any]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return await rt.run(stop, duration)


def _summary_text(s: dict[str, Any]) -> str:
    ing = s.get("ingest", {})
    plant = s.get("plant", {})
    return ("loopline run: "
            f"{s.get('samples', 0):,} samples received, {ing.get('stored', 0):,} stored, "
            f"{ing.get('quarantined', 0)} quarantined, {ing.get('dropped', 0)} dropped; "
            f"detections {json.dumps(s.get('detections', {}))}; "
            f"pending actions {plant.get('pending_recommendations', '?')}, "
            f"errors {s.get('errors_total', len(s.get('errors', [])))}")
