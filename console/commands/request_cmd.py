"""`loopline request setpoint|command ...`: ask for a change on purpose (``core.requests``).

The request becomes a recommendation with you as its author; it is approved like any
other (`loopline approve ID`, the console's Actions view) — by someone else where
``[autonomy] four_eyes`` names its class — and the running loopline executes it once.
"""

from __future__ import annotations

import argparse
import json

from console.commands.common import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("request", help="ask for a setpoint change or a machine command "
                       "(a recommendation someone approves)")
    rsub = p.add_subparsers(dest="request_cmd", metavar="KIND", required=True)
    s = rsub.add_parser("setpoint", help="ask for EQUIPMENT's setpoint NAME = VALUE")
    s.add_argument("equipment", metavar="EQUIPMENT")
    s.add_argument("name", metavar="NAME", help="the setpoint tag's name, e.g. speed_sp")
    s.add_argument("value", metavar="VALUE", type=float)
    s.add_argument("--recipe", help="the recipe whose limits apply (default: what runs there)")
    _common(s)
    s.set_defaults(func=run, kind="setpoint")
    c = rsub.add_parser("command", help="ask for a machine command on EQUIPMENT")
    c.add_argument("equipment", metavar="EQUIPMENT")
    c.add_argument("command", metavar="COMMAND", help="hold_lot, release_lot or complete_wo")
    c.add_argument("--arg", action="append", default=[], metavar="K=V",
                   help="a command argument, e.g. --arg fault=bearing or --arg lot=L-00101")
    _common(c)
    c.set_defaults(func=run, kind="command")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reason", required=True, help="why: the approver reads it")
    p.add_argument("--user", required=True, metavar="U", help="your user id")
    p.add_argument("--pin", metavar="P", help="your PIN (default: asked without echo)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def _args(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        k, sep, v = pair.partition("=")
        if not sep or not k.strip():
            raise UserError(f"--arg {pair!r}: write it as NAME=VALUE")
        out[k.strip()] = v.strip()
    return out


def run(args: argparse.Namespace) -> int:
    from console.commands.common import open_cli_store
    from console.commands.user import _ask
    from core.auth import Authenticator, AuthError
    from core.plant_clock import plant_clock
    from core.requests import Requester, RequestError
    from core.store import StoreError

    extra = _args(getattr(args, "arg", []))
    pin = _ask("PIN: ", args.pin)
    loaded, store = open_cli_store(args)
    try:
        clock = plant_clock(store)
        auth = Authenticator(store.engine, loaded.config.users, loaded.config.auth, clock)
        req = Requester(store, auth, clock, loaded.tags)
        if args.kind == "setpoint":
            r = req.setpoint(args.user, args.equipment, args.name, args.value,
                             reason=args.reason, pin=pin, recipe_id=args.recipe)
        else:
            r = req.command(args.user, args.equipment, args.command, extra,
                            reason=args.reason, pin=pin)
    except (AuthError, RequestError, StoreError) as e:
        raise UserError(str(e)) from None
    finally:
        store.close()
    four_eyes = r.decision_class in loaded.config.autonomy.four_eyes
    if args.json:
        print(json.dumps({"recommendation_id": r.recommendation_id,
                          "decision_class": r.decision_class, "target": r.target,
                          "params": r.params, "four_eyes": four_eyes}, ensure_ascii=False,
                         default=str))
        return 0
    who = "another person" if four_eyes else "someone with the role"
    print(f"{r.recommendation_id}: {r.decision_class} request for {r.target} proposed; "
          f"{who} approves it (loopline approve {r.recommendation_id})")
    return 0
