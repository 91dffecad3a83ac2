"""`loopline` (no command) or `loopline tui`: the console on the configured plant."""

from __future__ import annotations

import argparse

from core.clock import WallClock


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tui", help="open the console (the default without a command)")
    p.add_argument("--no-sim", action="store_true",
                   help="do not start the plant twin even if the config enables it")
    p.set_defaults(func=run_tui)


def run_tui(args: argparse.Namespace) -> int:
    from console.app import AppDeps, create_app
    from console.commands.status import open_cli_store

    loaded, store = open_cli_store(args)
    try:
        app = create_app(AppDeps(config=loaded, engine=store.engine, clock=WallClock(),
                                 refresh_s=loaded.config.console.refresh_ms / 1000))
        app.run()
    finally:
        store.close()
    return 0
