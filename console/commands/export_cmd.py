"""`loopline export DATASET --format parquet|csv --out PATH [--since T --until T]`.

Read-only against the store (safe beside a live runtime); the work is in core.exports.
"""

from __future__ import annotations

import argparse
import json

from console.commands.common import UserError
from console.commands.output import add_range, time_range
from core.exports import DATASETS, FORMATS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="a dataset to Parquet or CSV (polars)")
    p.add_argument("dataset", choices=DATASETS,
                   help="samples include the Parquet archive; oee is per equipment and "
                   "shift window")
    p.add_argument("--format", choices=FORMATS, default="parquet", help="default parquet")
    p.add_argument("--out", required=True, metavar="PATH", help="file to write")
    add_range(p)
    p.add_argument("--archive", metavar="DIR", help="samples: the Parquet archive folder "
                   "(default: [store] archive_dir of the config; 'none' for hot rows only)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from console.commands.common import audit_head, open_cli_store
    from core import exports

    since, until = time_range(args)
    loaded, store = open_cli_store(args, read_only=True)
    try:
        archive = (None if args.archive == "none" else args.archive or loaded.archive_dir)
        df = exports.frame(store, args.dataset, since, until, archive)
        path = exports.write(df, args.format, args.out)
        head = audit_head(store)
    except exports.ExportError as e:
        raise UserError(str(e)) from None
    finally:
        store.close()
    if args.json:
        print(json.dumps({"dataset": args.dataset, "format": args.format, "rows": df.height,
                          "columns": df.columns, "path": str(path), "audit_head": head}))
    else:
        print(f"wrote {df.height} rows of {args.dataset} to {path}")
        if head:
            print(f"audit head: {head['hash']}:{head['seq']} (keep it; check the trail with "
                  f"loopline audit verify --anchor {head['hash']}:{head['seq']})")
    return 0
