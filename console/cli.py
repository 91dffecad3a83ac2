"""`loopline` command line: one parser, one module per command under console/commands.

Each command module exposes ``register(sub: argparse._SubParsersAction) -> None`` and
sets ``func`` on its parser: ``func(args) -> int``. User errors (bad config, wrong
PIN, locked database) become a short message on stderr and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

from console.commands.common import UserError
from core.config import ConfigError

__all__ = ["UserError", "build_parser", "main"]

# Order is the order of `loopline --help`. Add a module here to add a command.
COMMAND_MODULES = [
    "console.commands.tui",
    "console.commands.run_cmd",
    "console.commands.config_cmd",
    "console.commands.discover_cmd",
    "console.commands.status",
    "console.commands.audit_cmd",
    "console.commands.user",
    "console.commands.sim_cmd",
    "console.commands.plan_cmd",
    "console.commands.ml_cmd",
    "console.commands.recs_cmd",
    "console.commands.decide_cmd",
    "console.commands.lists_cmd",
    "console.commands.export_cmd",
    "console.commands.report_cmd",
    "console.commands.eval_cmd",
    "console.commands.dispatch_cmd",
    "console.commands.request_cmd",
]


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                   help="config file (default: ./config.toml or $LOOPLINE_CONFIG)")
    p.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS,
                   help="store location, overrides [store] in the config (file path or URL)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loopline",
        description="Closed-loop manufacturing execution console. "
        "Without a command, opens the console on the configured plant.",
    )
    add_common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is None:
            continue  # a command not built yet on this branch
        mod = importlib.import_module(name)
        mod.register(sub)
    for p in sub.choices.values():
        add_common(p)
        _add_common_to_children(p)
    return parser


def _add_common_to_children(p: argparse.ArgumentParser) -> None:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                add_common(child)
                _add_common_to_children(child)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for opt in ("config", "db"):
        if not hasattr(args, opt):
            setattr(args, opt, None)
    func = getattr(args, "func", None)
    if func is None:
        from console.commands.tui import run_tui

        func = run_tui
    try:
        rc = func(args)
    except ConfigError as e:
        print(f"loopline: config error\n{e}", file=sys.stderr)
        return 2
    except UserError as e:
        print(f"loopline: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `loopline recs --json | head`: the reader has gone
        return 141
    except Exception as e:
        msg = environment_error(e)
        if msg is None:
            raise  # a bug: the traceback is what its fixer needs
        print(f"loopline: {msg}", file=sys.stderr)
        return 1
    return int(rc or 0)


def environment_error(e: BaseException) -> str | None:
    """One line for an error of the machine around loopline (a read-only, full, locked or
    missing store, a file that cannot be written), None for anything else (a bug)."""
    import sqlite3

    from sqlalchemy.exc import DBAPIError

    from core.audit import AuditError
    from core.store import StoreError
    from core.store.db import explain

    def db_reason(err: BaseException) -> str:
        return " ".join(explain("", err).split()).replace("store :", "store:")

    if isinstance(e, AuditError) and isinstance(e.__cause__, DBAPIError | sqlite3.Error):
        return f"{str(e).split(':')[0]}: {db_reason(e.__cause__)}"
    if isinstance(e, StoreError | AuditError):
        return str(e)
    if isinstance(e, DBAPIError | sqlite3.Error):
        return db_reason(e)
    if isinstance(e, OSError):
        where = f" {e.filename}" if e.filename else ""
        return f"cannot use{where}: {e.strerror or e}"
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
