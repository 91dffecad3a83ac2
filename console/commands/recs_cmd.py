"""`loopline recs [--status S] [--json]`: the recommendation queue, ranked as in the console.

Reads the store only, so it can run beside a live console or headless runtime.
"""

from __future__ import annotations

import argparse

from console.commands.output import parse_statuses, print_json, table
from core.listing import recommendations
from core.statuses import REC_ALL, REC_OPEN

COLUMNS = [("id", "id"), ("decision_class", "class"), ("target", "target"),
           ("action", "action"), ("status", "status"), ("impact_score", "impact"),
           ("confidence", "conf."), ("required_role", "role"), ("expires_at", "expires"),
           ("rationale", "why")]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recs", help="recommendations, highest expected impact first")
    p.add_argument("--status", metavar="S", default="open",
                   help="open (proposed + withheld, the default), all, or a comma-separated "
                   f"list of: {', '.join(REC_ALL)}")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(func=run)


def statuses_of(text: str) -> tuple[str, ...]:
    got = parse_statuses(text, REC_ALL, {"open": REC_OPEN, "all": REC_ALL})
    assert got is not None
    return got


def run(args: argparse.Namespace) -> int:
    from console.commands.common import open_cli_store

    statuses = statuses_of(args.status)
    _, store = open_cli_store(args, read_only=True)
    try:
        rows = recommendations(store, statuses)
    finally:
        store.close()
    if args.json:
        print_json(rows)
    else:
        table(rows, COLUMNS, f"Recommendations ({', '.join(statuses)})")
    return 0
