"""`loopline sim`: run the plant twin (OPC UA + Modbus TCP) in the foreground.

The twin runs as its own process (`python -m sim`), as under the runtime: loopline's
processes never import the twin, only its argument parsing (sim.args).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading


def register(sub: argparse._SubParsersAction) -> None:
    from sim.args import add_arguments

    p = sub.add_parser(
        "sim", help="run the plant twin: lines A/B on OPC UA, line C on Modbus TCP",
        description="Run the plant twin. Same --seed and --speed give the same ground truth. "
        "Times: 90, 90s, 15m, 2h, 1d. Register map and address space: sim/README.md.")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sim.args import to_argv

    argv = [sys.executable, "-m", "sim", *to_argv(args), "--exit-with-parent"]
    if args.config:
        argv += ["--config", str(args.config)]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "LOOPLINE_PARENT_PID": str(os.getpid())})
    # the twin's messages go to this process's stderr line by line (scripts and tests
    # that read loopline's stderr see them)
    relay = threading.Thread(target=_relay, args=(proc,), daemon=True)
    relay.start()
    try:
        rc = proc.wait()
    except KeyboardInterrupt:  # the terminal sent SIGINT to both: let the twin finish
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        relay.join(2)
        return 130
    relay.join(5)
    return rc


def _relay(proc: subprocess.Popen[str]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        print(line, end="", file=sys.stderr, flush=True)
