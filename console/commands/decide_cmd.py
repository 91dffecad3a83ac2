"""`loopline approve|reject ID --user U --pin P`: sign a decision from a script or a shell.

Builds only the Decider and the Authenticator over the store, no plant connection: the
approved action lands in the outbox, where the live runtime (console or headless) picks
it up and executes it exactly once. Refusals (wrong PIN, wrong role, expired, already
decided) are audited by the Decider and end here as a one-line message and exit 1.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from console.commands.common import UserError
from core.engine.decide import REJECT_REASONS

if TYPE_CHECKING:
    from core.engine.decide import Decider
    from core.store.db import Store


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("approve", help="approve a recommendation with your e-signature "
                       "(the runtime executes it)")
    a.add_argument("id", metavar="ID", help="recommendation id (see `loopline recs`)")
    _signer(a)
    a.add_argument("--comment", default="", help="a note kept with the decision")
    a.add_argument("--json", action="store_true", help="print JSON for scripts")
    a.set_defaults(func=approve)
    r = sub.add_parser("reject", help="reject a recommendation with a reason (feedback for "
                       "learning)")
    r.add_argument("id", metavar="ID", help="recommendation id")
    _signer(r)
    r.add_argument("--reason", required=True, choices=REJECT_REASONS,
                   help="why not (other needs --text)")
    r.add_argument("--text", default="", help="a few words; required with --reason other")
    r.add_argument("--json", action="store_true", help="print JSON for scripts")
    r.set_defaults(func=reject)


def _signer(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", required=True, metavar="U", help="your user id")
    p.add_argument("--pin", metavar="P", help="your PIN (default: asked without echo)")


def _decider(args: argparse.Namespace) -> tuple[Store, Decider]:
    from console.commands.common import open_cli_store
    from core.auth import Authenticator
    from core.clock import WallClock
    from core.engine.decide import Decider

    loaded, store = open_cli_store(args, create=False)
    clock = WallClock()
    auth = Authenticator(store.engine, loaded.config.users, loaded.config.auth, clock)
    return store, Decider(store, auth, loaded.config.autonomy, clock)


def approve(args: argparse.Namespace) -> int:
    from console.commands.user import _ask
    from core.auth import AuthError
    from core.engine.decide import DecisionError
    from core.store import StoreError

    pin = _ask("PIN: ", args.pin)
    store, decider = _decider(args)
    try:
        res = decider.approve(args.id, user_id=args.user, pin=pin, comment=args.comment)
    except (AuthError, DecisionError, StoreError) as e:
        raise UserError(str(e)) from None
    finally:
        store.close()
    out = {"recommendation_id": res.recommendation_id, "verdict": "approved",
           "action_id": res.action_id, "by": res.by,
           "waiting_for_second": res.waiting_for_second,
           "signature": res.signature.as_dict() if res.signature else None}
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    elif res.waiting_for_second:
        print(f"{res.recommendation_id}: first signature recorded; a second, different "
              "person must approve it too")
    else:
        print(f"{res.recommendation_id} approved by {res.by}: action {res.action_id} is in "
              "the outbox; the running loopline executes it")
    return 0


def reject(args: argparse.Namespace) -> int:
    from console.commands.user import _ask
    from core.auth import AuthError
    from core.engine.decide import DecisionError
    from core.store import StoreError

    pin = _ask("PIN: ", args.pin)
    store, decider = _decider(args)
    try:
        sig = decider.reject(args.id, args.user, pin, args.reason, args.text)
    except (AuthError, DecisionError, StoreError) as e:
        raise UserError(str(e)) from None
    finally:
        store.close()
    if args.json:
        print(json.dumps({"recommendation_id": args.id, "verdict": "rejected",
                          "reason": args.reason, "text": args.text,
                          "signature": sig.as_dict()}, ensure_ascii=False))
    else:
        print(f"{args.id} rejected by {args.user}: {args.reason}")
    return 0
