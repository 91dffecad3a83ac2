"""`loopline audit verify|tail`: check the hash chain, read the latest entries."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="verify or read the audit chain")
    asub = p.add_subparsers(dest="audit_cmd", metavar="ACTION", required=True)
    v = asub.add_parser("verify", help="exit 0 when the chain holds, else name the first "
                        "broken entry")
    v.add_argument("--anchor", metavar="FILE|HASH:COUNT",
                   help="a chain head kept outside the store (a witness file, a report or "
                   "export's JSON, or HASH:COUNT); default: the witness beside the store")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=verify)
    t = asub.add_parser("tail", help="the latest audit entries")
    t.add_argument("-n", type=int, default=20, help="how many (default 20)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=tail)


def verify(args: argparse.Namespace) -> int:
    from console.commands.common import UserError, open_cli_store
    from core import audit
    from core.audit_witness import AnchorError, parse_anchor, read_witness, witness_path

    _, store = open_cli_store(args, read_only=True)
    try:
        try:
            if args.anchor:
                anchor = parse_anchor(args.anchor)
            else:
                anchor = read_witness(witness_path(store.path)) if store.path else None
        except AnchorError as e:
            raise UserError(str(e)) from None
        res = audit.verify(store.engine, anchor)
    finally:
        store.close()
    if anchor is None:
        complete = "completeness not checked: no witness beside the store and no --anchor"
    elif res.ok:
        complete = f"complete up to the anchor's entry {anchor.seq} ({anchor.source})"
    else:
        complete = ""
    if args.json:
        print(json.dumps({"ok": res.ok, "checked": res.checked,
                          "first_bad_seq": res.first_bad_seq, "problem": res.problem,
                          "anchor": None if anchor is None else
                          {"seq": anchor.seq, "hash": anchor.hash, "source": anchor.source}}))
    else:
        print(res.message() + (f"; {complete}" if complete else ""))
    return 0 if res.ok else 1


def tail(args: argparse.Namespace) -> int:
    from console.commands.common import open_cli_store
    from core import audit

    _, store = open_cli_store(args, read_only=True)
    try:
        rows = audit.recent(store.engine, args.n)
    finally:
        store.close()
    for r in reversed(rows):
        if args.json:
            print(json.dumps({"seq": r.seq, "ts": r.ts.isoformat(), "actor": r.actor,
                              "action": r.action, "entity": r.entity,
                              "entity_id": r.entity_id, "detail": r.detail, "hash": r.hash}))
        else:
            print(f"{r.seq:>6}  {r.ts:%Y-%m-%d %H:%M:%S}  {r.actor:<8} {r.action:<22} "
                  f"{r.entity}:{r.entity_id}  {json.dumps(r.detail) if r.detail else ''}")
    return 0
