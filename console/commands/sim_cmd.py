"""`loopline sim`: run the plant twin (OPC UA + Modbus TCP) in the foreground."""

from __future__ import annotations

import argparse

from console.cli import UserError


def register(sub: argparse._SubParsersAction) -> None:
    from sim.cli import add_arguments

    p = sub.add_parser(
        "sim", help="run the plant twin: lines A/B on OPC UA, line C on Modbus TCP",
        description="Run the plant twin. Same --seed and --speed give the same ground truth. "
        "Times: 90, 90s, 15m, 2h, 1d. Register map and address space: sim/README.md.")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sim.cli import SimUsageError
    from sim.cli import run as run_sim

    try:
        return run_sim(args, args.config)
    except SimUsageError as e:
        raise UserError(str(e)) from None
