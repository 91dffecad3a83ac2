"""`loopline dispatch start|pause|resume|complete|list`: run an order's operation on a
machine from the MES side (``core.dispatch``).

Works on the store only: the running loopline (console or headless, any process) picks
the dispatch up on its next ingest upkeep and stamps it on the machine's samples where
the config's ``context_source`` says the context comes from dispatch.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from console.commands.common import UserError

if TYPE_CHECKING:
    from core.config import LoadedConfig
    from core.dispatch import Dispatch, Dispatcher
    from core.store.db import Store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dispatch", help="start, pause, resume or complete an order's "
                       "operation on a machine (MES dispatch)")
    dsub = p.add_subparsers(dest="dispatch_cmd", metavar="ACTION", required=True)
    s = dsub.add_parser("start", help="start an order's operation on a machine")
    s.add_argument("equipment", metavar="EQUIPMENT")
    s.add_argument("order", metavar="ORDER")
    s.add_argument("--lot", help="the lot (default: the order's open lot, else a new one)")
    s.add_argument("--batch", help="the material batch it runs with (genealogy)")
    s.add_argument("--operator", help="who runs it (default: --user)")
    _signer(s)
    s.set_defaults(func=run, act="start")
    pa = dsub.add_parser("pause", help="pause the operation on a machine")
    pa.add_argument("equipment", metavar="EQUIPMENT")
    pa.add_argument("--reason", default="", help="why (kept in the audit)")
    _signer(pa)
    pa.set_defaults(func=run, act="pause")
    for act, text in (("resume", "resume a paused operation"),
                      ("complete", "complete the operation: its context ends")):
        a = dsub.add_parser(act, help=text)
        a.add_argument("equipment", metavar="EQUIPMENT")
        _signer(a)
        a.set_defaults(func=run, act=act)
    ls = dsub.add_parser("list", help="what runs where, as dispatched")
    ls.add_argument("--json", action="store_true", help="print JSON for scripts")
    ls.set_defaults(func=list_dispatch)


def _signer(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", required=True, metavar="U", help="your user id")
    p.add_argument("--pin", metavar="P", help="your PIN (asked when [auth] sign_dispatch)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def _dispatcher(args: argparse.Namespace) -> tuple[LoadedConfig, Store, Dispatcher]:
    from console.commands.common import open_cli_store
    from core.auth import Authenticator
    from core.dispatch import Dispatcher
    from core.plant_clock import plant_clock

    loaded, store = open_cli_store(args)
    clock = plant_clock(store)  # the running loopline's plant time (the twin may be fast)
    auth = Authenticator(store.engine, loaded.config.users, loaded.config.auth, clock)
    return loaded, store, Dispatcher(store, auth, clock)


def source_of(loaded: LoadedConfig, equipment_id: str) -> str | None:
    """The machine's context_source (None: no such machine in the config)."""
    for ln in loaded.config.lines:
        for eq in ln.equipment:
            if eq.id == equipment_id:
                return eq.context_source or ln.context_source
    return None


def run(args: argparse.Namespace) -> int:
    from console.commands.user import _ask
    from core.auth import AuthError
    from core.dispatch import DispatchError
    from core.store import StoreError

    loaded, store, disp = _dispatcher(args)
    try:
        pin = args.pin
        if pin is None and loaded.config.auth.sign_dispatch:
            pin = _ask("PIN: ", None)
        if args.act == "start":
            d = disp.start(args.user, args.equipment, args.order, lot_id=args.lot,
                           batch_id=args.batch, operator_id=args.operator, pin=pin)
        elif args.act == "pause":
            d = disp.pause(args.user, args.equipment, reason=args.reason, pin=pin)
        elif args.act == "resume":
            d = disp.resume(args.user, args.equipment, pin=pin)
        else:
            d = disp.complete(args.user, args.equipment, pin=pin)
    except (AuthError, DispatchError, StoreError) as e:
        raise UserError(str(e)) from None
    finally:
        store.close()
    src = source_of(loaded, args.equipment)
    if args.json:
        print(json.dumps({"act": args.act, **d.as_dict(), "context_source": src},
                         ensure_ascii=False))
        return 0
    print(_line(args.act, d))
    if src == "device":
        print(f"note: {args.equipment} takes its context from its device tags "
              "(context_source = \"device\"); set context_source on its line or machine to "
              "stamp this dispatch on its samples")
    return 0


def _line(act: str, d: Dispatch) -> str:
    what = d.operation_id or d.order_id
    if act == "complete":
        return f"{what} complete on {d.equipment_id} (lot {d.lot_id})"
    return (f"{what} {d.status} on {d.equipment_id}: lot {d.lot_id}, operator "
            f"{d.operator_id}")


def list_dispatch(args: argparse.Namespace) -> int:
    from console.commands.common import open_cli_store
    from core.dispatch import current_dispatch

    _, store = open_cli_store(args)
    try:
        rows: list[dict[str, Any]] = [d.as_dict() for d in
                                      sorted(current_dispatch(store).values(),
                                             key=lambda d: d.equipment_id)]
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
    elif not rows:
        print("nothing dispatched")
    else:
        for r in rows:
            print(f"{r['equipment_id']:<10} {r['operation_id'] or r['order_id']:<12} "
                  f"{r['status']:<8} lot {r['lot_id']}  operator {r['operator_id']}  "
                  f"since {r['since']}")
    return 0
