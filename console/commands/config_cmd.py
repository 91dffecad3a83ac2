"""`loopline config check|schema`: validate a config file or print its JSON schema."""

from __future__ import annotations

import argparse
import json
import sys

from core.config import Config, ConfigError, LoadedConfig, load_config
from core.store.db import mask


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="check a config file or print its schema")
    csub = p.add_subparsers(dest="config_cmd", metavar="ACTION", required=True)
    c = csub.add_parser("check", help="validate a config file; exit 0 when it is usable")
    c.add_argument("path", nargs="?", help="file to check (default: --config or ./config.toml)")
    c.set_defaults(func=check)
    s = csub.add_parser("schema", help="print the JSON schema of config.toml")
    s.set_defaults(func=schema)


def checked_config(path: str | None, db: str | None) -> LoadedConfig:
    """``load_config`` plus ``problems``: a ``ConfigError`` listing them all."""
    from runtime.commissioning import config_problems

    loaded = load_config(path, db=db)
    found = config_problems(loaded)
    if found:
        raise ConfigError("\n".join(found))
    return loaded


def check(args: argparse.Namespace) -> int:
    path = args.path or args.config
    try:
        cfg = checked_config(path, args.db)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 1
    c = cfg.config
    n_eq = sum(len(ln.equipment) for ln in c.lines)
    print(
        f"{cfg.path}: ok — {len(c.lines)} lines, {n_eq} equipment, {len(cfg.tags)} tags, "
        f"{len(c.drivers)} drivers, {len(c.users)} users; store {mask(cfg.db_url)}"
    )
    return 0


def schema(args: argparse.Namespace) -> int:
    print(json.dumps(Config.model_json_schema(), indent=2, ensure_ascii=False))
    return 0
