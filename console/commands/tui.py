"""`loopline` (no command) or `loopline tui`: the console on the configured plant.

With ``[simulator] enabled = true`` the runtime starts the plant twin, connects the
drivers and runs the closed loop in a background thread of this process; the console
follows it through its event bus and the store. ``--no-runtime`` opens the console on
the store alone (a second console beside a headless runtime, or a look at old data).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from console.commands.common import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tui", help="open the console (the default without a command)")
    p.add_argument("--no-sim", action="store_true",
                   help="do not start the plant twin even if the config enables it")
    p.add_argument("--no-runtime", action="store_true",
                   help="only read the store: no drivers, no loop (a second console)")
    p.add_argument("--speed", type=float, help="twin speed, 1..3600 (default: [simulator])")
    p.add_argument("--seed", type=int, help="twin random seed (default: [simulator])")
    p.add_argument("--approve", choices=("never", "auto", "policy"), default="policy",
                   help="what the loop approves on its own (default: policy = [autonomy])")
    p.add_argument("--inject", action="append", default=[], metavar="KIND:EQUIPMENT@T[~F]",
                   help="fault for the twin at twin time T, e.g. bearing:A-LATHE1@2h; ~F "
                   "starts a wear fault F of its way to failure")
    p.add_argument("--opcua-port", type=int, metavar="P",
                   help="port for the twin's OPC UA server (default: [simulator]; a busy "
                   "configured port is replaced by a free one)")
    p.add_argument("--modbus-port", type=int, metavar="P",
                   help="port for the twin's Modbus server (default: [simulator], as above)")
    p.add_argument("--demo", action="store_true",
                   help="the guided first run: twin at speed 60 with a worn bearing and a "
                   "heater fault injected, so an alarm and a recommendation come within "
                   "two minutes (what `make run` starts)")
    from console.commands.run_cmd import add_lines_args

    add_lines_args(p)
    p.set_defaults(func=run_tui)


# `--demo`: a bearing most of its way to failure (alarm and work order within a minute or
# two at speed 60) and a heater drifting on line B a little later
DEMO_SPEED = 60.0
DEMO_INJECT = ("bearing:A-LATHE1@0~0.95", "heater:B-MOLD1@60~0.9")


def run_tui(args: argparse.Namespace) -> int:
    from console.app import AppDeps, create_app
    from console.commands.common import open_cli_store
    from console.commands.run_cmd import lines_opts
    from console.runtime_link import FollowClock, RuntimeStarted, StoreClock
    from console.state import ConsoleState

    loaded, store = open_cli_store(args)
    try:
        scoped = lines_opts(args, loaded)
    except UserError:
        store.close()
        raise
    log_path = loaded.resolve("data/loopline.log") if loaded.db_path is None else \
        loaded.db_path.with_suffix(".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # the console owns the terminal: runtime warnings go to a log file beside the store
    logging.basicConfig(filename=str(log_path), level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    speed = getattr(args, "speed", None)
    inject = list(getattr(args, "inject", None) or [])
    if getattr(args, "demo", False):
        speed = DEMO_SPEED if speed is None else speed
        inject = inject or list(DEMO_INJECT)
    if speed is not None and not 1 <= speed <= 3600:
        store.close()
        raise UserError(f"--speed {speed:g} is out of range 1..3600")
    clock: Any = StoreClock(store.engine)  # --no-runtime: the store's plant time
    bus = None
    starter = None
    held: dict[str, Any] = {}  # the BackgroundRuntime, once the worker made it
    if not getattr(args, "no_runtime", False):
        from core.events import EventBus

        clock, bus = FollowClock(), EventBus()

        def starter() -> RuntimeStarted:
            """In the console's worker, after its first frame: the plant is drawn from
            the store meanwhile (the runtime's imports and the twin take seconds)."""
            from runtime.host import BackgroundRuntime, Runtime, RuntimeError_, RuntimeOptions

            opts = RuntimeOptions(speed=speed, seed=getattr(args, "seed", None), inject=inject,
                                  approve=getattr(args, "approve", "policy"),
                                  spawn_twin=False if getattr(args, "no_sim", False) else None,
                                  opcua_port=getattr(args, "opcua_port", None),
                                  modbus_port=getattr(args, "modbus_port", None),
                                  free_ports_if_busy=True, **scoped)
            rt = Runtime(loaded, store, opts, bus=bus)
            bg = held["bg"] = BackgroundRuntime(rt)
            try:
                bg.start()
            except RuntimeError_ as e:
                raise RuntimeError(f"{e} (--no-runtime opens the console on the store "
                                   "alone)") from None
            notes = []
            if rt.twin is not None and rt.twin.moved:
                notes.append(f"configured twin ports in use; the twin serves on free ones "
                             f"({', '.join(rt.twin.moved)})")
            return RuntimeStarted(rt.clock, rt.alarms, notes)
    try:
        app = create_app(AppDeps(config=loaded, engine=store.engine, clock=clock,
                                 refresh_s=loaded.config.console.refresh_ms / 1000,
                                 bus=bus, store=store, runtime_start=starter,
                                 state=ConsoleState.default(loaded.base_dir),
                                 runtime_live=starter is not None))
        app.run()
    finally:
        bg = held.get("bg")
        if bg is not None and bg.started:
            print("loopline: stopping the runtime (draining the store writer)…",
                  file=sys.stderr)
            bg.stop()
        store.close()
    return 0
