"""The twin's arguments, shared by `python -m sim` and the loopline commands that start
it (`loopline sim`, `run`, `eval`): parsing only, standard library and sim.physics'
fault names, so importing it starts nothing of the twin."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime

from sim.physics import FAULT_KINDS


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
    p.add_argument("--reliability", metavar="TOML", help="repair times, spare-part waits "
                   "and planned-job lengths from a scenario file's [reliability] table "
                   "(default: 1.5-4 h repairs, 20 min jobs)")
    p.add_argument("--write-config", metavar="PATH", help="also write the served tag map "
                   "(scaled copies, these ports) as a config file clients can load")
    p.add_argument("--sparkplug", metavar="HOST:PORT", help="also publish one line as a "
                   "Sparkplug B edge node to this MQTT broker")
    p.add_argument("--sparkplug-line", metavar="LINE", help="the line published over "
                   "Sparkplug B (default: the first Modbus line, else the first line)")
    p.add_argument("--no-opcua", action="store_true", help="serve Modbus only")
    p.add_argument("--no-modbus", action="store_true", help="serve OPC UA only")
    p.add_argument("--ready-file", metavar="PATH", help=argparse.SUPPRESS)
    p.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", action="store_true")


def to_argv(args: argparse.Namespace) -> list[str]:
    """The twin's options in ``args`` back as command-line words, for the child process."""
    p = argparse.ArgumentParser(add_help=False)
    add_arguments(p)
    out: list[str] = []
    for act in p._actions:
        if not act.option_strings or act.dest == "help":
            continue
        val = getattr(args, act.dest, None)
        flag = act.option_strings[-1]
        if isinstance(act, argparse._StoreTrueAction):
            if val:
                out.append(flag)
        elif isinstance(act, argparse._AppendAction):
            for v in val or []:
                out += [flag, str(v)]
        elif val is not None:
            out += [flag, str(val)]
    return out
