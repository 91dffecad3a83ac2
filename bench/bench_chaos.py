"""Reliability harness: loopline broken on purpose, one row per way of breaking it.

Kills, server restarts, a locked and a full store, a bad device, fuzzed files and
command lines, a tampered audit trail.

    python -m bench chaos [--seed 7] [--quick] [--only NAME[,NAME...]] [--keep] [--json]

Runs the real runtime and twin as processes on free loopback ports, a real SQLite store,
the real CLI. Prints one row per scenario: trials, failures, data lost, actions executed
twice, and the figure the reliability issue asks for. Seeded: the same --seed gives the
same kill points, fuzz cases and tampering. ``--quick`` is the short version the test
suite runs (a few trials each). Exit 1 when any trial failed. Scenarios:
kills, restarts, lock, full, device, configs, master, cli, audit.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from bench.chaos import Row, device, fuzz, kills, render, store_faults, tamper

FULL = {"kills": 20, "restarts": 20, "lock": [5.0, 15.0, 30.0], "full": [5.0, 15.0],
        "device": 1, "configs": 200, "master": 200, "cli": 100, "audit": 3}
QUICK = {"kills": 3, "restarts": 2, "lock": [5.0], "full": [4.0], "device": 1,
         "configs": 40, "master": 40, "cli": 100, "audit": 1}


def scenarios(size: dict, seed: int) -> dict[str, Callable[[Path], Row]]:
    return {
        "kills": lambda w: kills.runtime_kills(w, seed, size["kills"]),
        "restarts": lambda w: kills.server_restarts(w, seed, size["restarts"]),
        "lock": lambda w: store_faults.locked_store(w, seed, size["lock"]),
        "full": lambda w: store_faults.disk_full(w, seed, size["full"]),
        "device": lambda w: device.bad_device(w, seed, size["device"]),
        "configs": lambda w: fuzz.configs(w, seed, size["configs"]),
        "master": lambda w: fuzz.master_data(w, seed, size["master"]),
        "cli": lambda w: fuzz.cli_invocations(w, seed, size["cli"]),
        "audit": lambda w: tamper.run(w, Path(__file__).resolve().parents[1] / "config.toml",
                                      seed, size["audit"]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench chaos", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="a few trials each (the test suite's)")
    p.add_argument("--only", help="comma-separated scenarios (default: all)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    table = scenarios(QUICK if args.quick else FULL, args.seed)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        print(f"bench chaos: unknown scenario {', '.join(unknown)} (known: "
              f"{', '.join(table)})", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="loopline-chaos-"))
    rows: list[Row] = []
    t0 = time.monotonic()
    try:
        for name in names:
            w = work / name
            w.mkdir()
            t = time.monotonic()
            row = table[name](w)
            row.note += f" [{time.monotonic() - t:.0f} s]"
            rows.append(row)
            print(render([row]).splitlines()[-1 - len(row.problems)] if not args.json else "",
                  file=sys.stderr, flush=True)
    finally:
        if args.keep:
            print(f"work folder: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        print(f"loopline chaos, seed {args.seed}{' (quick)' if args.quick else ''}, "
              f"{time.monotonic() - t0:.0f} s")
        print(render(rows))
    return 1 if any(r.failures for r in rows) else 0
