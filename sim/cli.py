"""Arguments of the twin, shared by `loopline sim` and `python -m sim` (the child
process the console starts)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from core.config import ConfigError, load_config
from sim.master import MasterDataError, load_master
from sim.opcua_server import Security
from sim.physics import FAULT_KINDS
from sim.runner import TwinOptions, run_twin


def parse_utc(text: str) -> datetime:
    """ISO-8601 (``Z`` allowed; naive means UTC) to an aware UTC datetime."""
    ts = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


class SimUsageError(Exception):
    """Bad twin arguments; str() is the message."""


_DUR = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(text: str) -> float:
    m = _DUR.match(text.strip())
    if not m:
        raise SimUsageError(f"bad time {text!r}: use e.g. 90, 90s, 15m, 2h, 1.5d")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_inject(text: str) -> tuple[str, str, int, float]:
    """``KIND:EQUIPMENT@T[~F]`` (T in twin time since start, e.g. 2h; F: the share of a
    wear fault's course already run when it starts, 0 <= F < 1, e.g. ~0.8 for a bearing
    that fails within hours — so a run at speed 1 sees it cross its limits)."""
    m = re.match(r"^([a-z\-]+):([A-Za-z0-9_\-]+)@([^~]+)(?:~(.+))?$", text.strip())
    if not m:
        raise SimUsageError(f"bad --inject {text!r}: use KIND:EQUIPMENT@T[~F], e.g. "
                            "bearing:A-LATHE1@2h or bearing:A-LATHE1@0~0.8")
    kind, eq, at, done_s = m.groups()
    if kind not in FAULT_KINDS:
        raise SimUsageError(f"bad --inject {text!r}: unknown fault kind {kind!r} "
                            f"(kinds: {', '.join(FAULT_KINDS)})")
    try:
        done = float(done_s) if done_s is not None else 0.0
    except ValueError:
        done = -1.0
    if not 0.0 <= done < 1.0:
        raise SimUsageError(f"bad --inject {text!r}: ~F is the share of the fault's course "
                            "already run, 0 <= F < 1 (e.g. ~0.8)")
    return kind, eq, int(parse_duration(at)), done


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, help="random seed (default: [simulator] seed)")
    p.add_argument("--speed", type=float, help="twin seconds per wall second, 1..3600 "
                   "(default: [simulator] speed)")
    p.add_argument("--duration", metavar="S", help="wall-clock run time, e.g. 60, 10m "
                   "(default: until stopped)")
    p.add_argument("--truth", metavar="PATH", help="ground-truth log, JSON lines")
    p.add_argument("--opcua-port", type=int, metavar="P")
    p.add_argument("--modbus-port", type=int, metavar="P")
    p.add_argument("--host", help="address to bind (default: [simulator] host)")
    p.add_argument("--inject", action="append", default=[], metavar="KIND:EQUIPMENT@T",
                   help=f"start a fault at twin time T ({', '.join(FAULT_KINDS)}); "
                   "~F starts a wear fault F of its way to failure")
    p.add_argument("--scale", type=int, help="copies of every line (plant size for benchmarks)")
    p.add_argument("--start", metavar="ISO", help="twin start time, UTC (default: this hour)")
    p.add_argument("--faults-per-day", type=float, help="random fault rate "
                   "(default: [simulator] random_faults_per_day)")
    p.add_argument("--write-config", metavar="PATH", help="also write the served tag map "
                   "(scaled copies, these ports) as a config file clients can load")
    p.add_argument("--no-opcua", action="store_true", help="serve Modbus only")
    p.add_argument("--no-modbus", action="store_true", help="serve OPC UA only")
    p.add_argument("--ready-file", metavar="PATH", help=argparse.SUPPRESS)
    p.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", action="store_true")


def options_from_args(args: argparse.Namespace, cfg_path: str | None) -> tuple:
    cfg = load_config(cfg_path)
    sim = cfg.config.simulator
    speed = args.speed if args.speed is not None else sim.speed
    if not 1 <= speed <= 3600:
        raise SimUsageError(f"--speed {speed}: must be between 1 and 3600")
    scale = args.scale if args.scale is not None else sim.scale
    if not 1 <= scale <= 120:
        raise SimUsageError(f"--scale {scale}: must be between 1 and 120")
    start = None
    start_text = args.start or sim.start
    if start_text:
        try:
            start = parse_utc(start_text)
        except ValueError:
            raise SimUsageError(f"bad --start {start_text!r}: use ISO-8601, "
                                "e.g. 2026-01-05T06:00:00Z") from None
    security = None
    if sim.opcua_security:
        security = Security(cfg.resolve(sim.opcua_cert_dir), sim.opcua_username,
                            sim.opcua_password)
    opts = TwinOptions(
        seed=args.seed if args.seed is not None else sim.seed,
        speed=speed,
        duration_s=parse_duration(args.duration) if args.duration else None,
        truth=Path(args.truth) if args.truth else None,
        host=args.host or sim.host,
        opcua_port=args.opcua_port or sim.opcua_port,
        modbus_port=args.modbus_port or sim.modbus_port,
        injections=[parse_inject(x) for x in args.inject],
        scale=scale,
        start=start,
        random_faults_per_day=(args.faults_per_day if args.faults_per_day is not None
                               else sim.random_faults_per_day),
        security=security,
        ready_file=Path(args.ready_file) if args.ready_file else None,
        exit_with_parent=args.exit_with_parent,
        opcua=not args.no_opcua,
        modbus=not args.no_modbus,
    )
    try:
        master = load_master(cfg.master_data_path)
    except MasterDataError as e:
        raise SimUsageError(str(e)) from None
    return cfg, master, opts


def run(args: argparse.Namespace, cfg_path: str | None) -> int:
    """Validate everything first, so user errors never surface as tracebacks."""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.verbose:
        logging.getLogger("asyncua").setLevel(logging.ERROR)
        logging.getLogger("pymodbus").setLevel(logging.ERROR)
    cfg, master, opts = options_from_args(args, cfg_path)
    from sim.plant import Plant  # noqa: F401  (imported for the check below)

    for kind, eq, *_ in opts.injections:
        known = {m.id for ln in cfg.config.lines for m in ln.equipment}
        if eq not in known and opts.scale == 1:
            raise SimUsageError(f"--inject {kind}:{eq}: unknown equipment {eq!r} "
                                f"(known: {', '.join(sorted(known))})")
    if args.write_config:
        from sim.scale import write_scaled_config

        write_scaled_config(cfg, opts.scale, args.write_config, opcua_port=opts.opcua_port,
                            modbus_port=opts.modbus_port)
    try:
        return asyncio.run(run_twin(cfg, master, opts))
    except ValueError as e:
        raise SimUsageError(str(e)) from None
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise SimUsageError(f"port in use: {e.strerror} (choose --opcua-port/"
                                "--modbus-port)") from None
        raise


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim", description="loopline plant twin")
    p.add_argument("--config", metavar="PATH")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args, args.config)
    except (SimUsageError, ConfigError) as e:
        print(f"sim: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
