"""`python -m sim`: the twin's own entry point (the process `loopline sim` and the
runtime start). Its arguments live in sim.args, which loopline's processes import too."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import sys
from pathlib import Path

from core.config import ConfigError, load_config
from sim.args import SimUsageError, add_arguments, parse_duration, parse_inject, parse_utc
from sim.master import MasterDataError, load_master
from sim.opcua_server import Security
from sim.reliability import ReliabilityError, load_reliability
from sim.runner import TwinOptions, run_twin

__all__ = ["SimUsageError", "add_arguments", "main", "parse_duration", "parse_inject", "run"]


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
    reliability = None
    if args.reliability:
        try:
            reliability = load_reliability(args.reliability)
        except ReliabilityError as e:
            raise SimUsageError(str(e)) from None
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
        reliability=reliability,
        security=security,
        ready_file=Path(args.ready_file) if args.ready_file else None,
        exit_with_parent=args.exit_with_parent,
        opcua=not args.no_opcua,
        modbus=not args.no_modbus,
        sparkplug=_broker(args.sparkplug),
        sparkplug_line=args.sparkplug_line,
    )
    try:
        master = load_master(cfg.master_data_path)
    except MasterDataError as e:
        raise SimUsageError(str(e)) from None
    return cfg, master, opts


def _broker(text: str | None) -> tuple[str, int] | None:
    if text is None:
        return None
    from sim.sparkplug_twin import parse_host_port

    try:
        return parse_host_port(text)
    except ValueError as e:
        raise SimUsageError(str(e)) from None


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
