"""`loopline ml cmapss`, `loopline models [rollback NAME]`, `loopline train [MODEL]`.

The registry lives under [ml] models_dir and is mirrored into the store's ModelVersion
table. Training reads the plant's history from the store (hot SQLite + Parquet archive,
ml.store_source); with no samples yet ``train`` says so plainly (``--synthetic SEED``
trains on a generated plant instead, to try the registry end to end).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from console.commands.common import UserError
from core.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ml", help="machine-learning tools (C-MAPSS benchmark)")
    msub = p.add_subparsers(dest="ml_cmd", metavar="ACTION", required=True)
    c = msub.add_parser("cmapss", help="train the RUL pipeline on NASA C-MAPSS data and score it")
    c.add_argument("--train", required=True, metavar="FILE", help="train_FDxxx.txt")
    c.add_argument("--test", metavar="FILE", help="test_FDxxx.txt (needs --rul)")
    c.add_argument("--rul", metavar="FILE", help="RUL_FDxxx.txt: true RUL per test engine")
    c.add_argument("--holdout", type=float, default=0.2,
                   help="share of training engines held out without --test (default 0.2)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--trees", type=int, default=600, help="boosting rounds (default 600)")
    c.add_argument("--truncations", type=int, default=1,
                   help="random truncations per held-out engine, averaged (default 1)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=cmapss_cmd)

    m = sub.add_parser("models", help="list trained models; roll a champion back")
    m.add_argument("--json", action="store_true", help="machine-readable output")
    m.set_defaults(func=models_list)
    msub2 = m.add_subparsers(dest="models_cmd", metavar="ACTION")
    r = msub2.add_parser("rollback", help="retire the champion, reinstate the one it replaced")
    r.add_argument("name", help="model name (an [[ml.jobs]] name)")
    r.add_argument("--json", action="store_true", help="machine-readable output")
    r.set_defaults(func=models_rollback)

    t = sub.add_parser("train", help="train a challenger now and promote it if it wins")
    t.add_argument("model", nargs="?", help="an [[ml.jobs]] name (default: every enabled job)")
    t.add_argument("--days", type=float, default=30.0, help="history to train on (default 30)")
    t.add_argument("--trees", type=int, default=150, help="boosting rounds (default 150)")
    t.add_argument("--synthetic", type=int, metavar="SEED",
                   help="train on a generated plant with this seed instead of the store")
    t.add_argument("--json", action="store_true", help="machine-readable output")
    t.set_defaults(func=train_cmd)


# ------------------------------------------------------------------ ml cmapss


def cmapss_cmd(args: argparse.Namespace) -> int:
    from ml import cmapss

    if (args.test is None) != (args.rul is None):
        raise UserError("--test and --rul go together (the test file and its true RUL)")
    if not 0.0 < args.holdout < 1.0:
        raise UserError("--holdout must be between 0 and 1")
    if args.trees < 1 or args.truncations < 1:
        raise UserError("--trees and --truncations must be at least 1")
    try:
        rep = cmapss.run(args.train, args.test, args.rul, holdout=args.holdout, seed=args.seed,
                         n_estimators=args.trees, truncations=args.truncations)
    except cmapss.CmapssFormatError as e:
        raise UserError(str(e)) from None
    if args.json:
        print(json.dumps(rep, indent=2))
        return 0
    held = rep.get("holdout_engines")
    print(f"C-MAPSS {rep['train_file']}: trained on {rep['train_engines']} engines, "
          f"{rep['features']} features, {rep['n_estimators']} trees, {rep['train_s']:.1f} s; "
          f"RUL cap {rep['rul_cap']}")
    if held:
        print(f"held out {len(held)} engines (seed {rep['seed']}): {held}")
    for ev in rep["evaluations"]:
        tag = "  <- reported" if ev.get("primary") or not held else ""
        print(f"  {ev['protocol']}: engines {ev['engines']}  RMSE {ev['rmse']:.2f}  "
              f"PHM08 score {ev['phm08_score']:.1f}{tag}")
    return 0


# ------------------------------------------------------------------ models


def _registry(args: argparse.Namespace) -> Any:
    from ml.registry import Registry

    cfg = load_config(args.config, db=args.db)
    return Registry(cfg.models_dir), cfg


def _primary(rec: dict[str, Any]) -> str:
    from ml.models import PRIMARY

    metric = PRIMARY.get(rec["kind"], ("", ""))[0]
    m = rec.get("holdout_metrics") or rec.get("metrics") or {}
    v = m.get(metric)
    return f"{metric} {v:.4g}" if isinstance(v, float) else f"{metric} -"


def models_list(args: argparse.Namespace) -> int:
    from ml.registry import RegistryError

    reg, _ = _registry(args)
    try:
        recs = reg.versions()
    except RegistryError as e:
        raise UserError(str(e)) from None
    if args.json:
        print(json.dumps({"models_dir": str(reg.root), "versions": recs}, indent=2))
        return 0
    if not recs:
        print(f"no trained models in {reg.root} (run `loopline train`)")
        return 0
    print(f"{'NAME':<16}{'VER':>4}  {'KIND':<9}{'STATUS':<12}{'TRAINED':<22}"
          f"{'WINDOW (UTC)':<38}HOLD-OUT")
    for r in recs:
        tw = r.get("train_window") or [None, None]
        win = f"{(tw[0] or '')[:16]} .. {(tw[1] or '')[:16]}"
        print(f"{r['name']:<16}{r['version']:>4}  {r['kind']:<9}{r['status']:<12}"
              f"{r['created'][:19]:<22}{win:<38}{_primary(r)}")
    return 0


def models_rollback(args: argparse.Namespace) -> int:
    from ml.registry import RegistryError

    reg, cfg = _registry(args)
    try:
        rec = reg.rollback(args.name)
    except RegistryError as e:
        raise UserError(str(e)) from None
    if cfg.db_path is None or cfg.db_path.exists():
        _mirror(cfg, reg)
    if args.json:
        print(json.dumps(rec, indent=2))
    else:
        print(f"{args.name}: v{rec['version']} is champion again")
    return 0


# ------------------------------------------------------------------ train


def _store(cfg: Any) -> Any:
    from core.store import StoreError
    from core.store.db import open_store

    try:
        return open_store(cfg.db_url)
    except StoreError as e:
        raise UserError(str(e)) from None


def _store_source(cfg: Any) -> Any:
    """The plant's history (hot store + Parquet archive), events and quality results."""
    from ml.store_source import StoreSource

    tags = [t.id for t in cfg.tags]
    return StoreSource(_store(cfg), cfg.archive_dir, tags)


def _newest_sample(cfg: Any) -> datetime | None:
    from core.clock import ensure_utc
    from core.history import newest_ts

    with _store(cfg).engine.connect() as conn:
        ts = newest_ts(conn)
    return ensure_utc(ts) if ts is not None else None


def _mirror(cfg: Any, reg: Any) -> None:
    """Best effort: the store's ModelVersion table follows the registry manifest."""
    from core.store import StoreError
    from ml.store_source import mirror_versions

    try:
        mirror_versions(_store(cfg), reg)
    except (StoreError, UserError) as e:
        print(f"loopline: models saved, but the store's model list was not updated: {e}",
              file=sys.stderr)


def train_cmd(args: argparse.Namespace) -> int:
    from ml import jobs as mljobs
    from ml.jobs import FrameSource
    from ml.models import TrainingError
    from ml.registry import RegistryError

    reg, cfg = _registry(args)
    job_list = [j for j in cfg.config.ml.jobs if j.enabled]
    if args.model:
        job_list = [j for j in cfg.config.ml.jobs if j.name == args.model]
        if not job_list:
            names = ", ".join(j.name for j in cfg.config.ml.jobs) or "none"
            raise UserError(f"no [[ml.jobs]] named {args.model!r} (configured: {names})")
    if not job_list:
        raise UserError("no [[ml.jobs]] configured")
    if args.synthetic is not None:
        from ml import synthetic

        plant = synthetic.generate(
            8, days=6, seed=args.synthetic,
            faults=[synthetic.Fault(i % 8, h) for i, h in enumerate((30, 60, 85, 110, 130))])
        source: Any = FrameSource(plant.history, plant.events, plant.quality)
        now = plant.at(6 * 24)
    else:
        source = _store_source(cfg)
        # a twin's history runs in plant time, which may be ahead of the wall clock (a
        # fast twin, `loopline eval`): train up to the newest stored sample then
        now = max(datetime.now(UTC), _newest_sample(cfg) or datetime.now(UTC))
    hist = source.history(now - timedelta(days=args.days), now)
    if hist.height == 0:
        raise UserError(f"no history available yet: the store has no samples in the last "
                        f"{args.days:g} days to train on")
    events, quality = source.events(None, now), source.quality(None, now)
    results = []
    for job in job_list:
        try:
            res = mljobs.train_and_register(str(reg.root), job, hist, events, quality,
                                            n_estimators=args.trees)
        except TrainingError as e:
            res = {"name": job.name, "error": str(e)}
        except RegistryError as e:
            raise UserError(str(e)) from None
        results.append(res)
        if not args.json:
            if "error" in res:
                print(f"{job.name}: not trained: {res['error']}", file=sys.stderr)
            else:
                d = res["decision"]
                verdict = "champion" if d["promoted"] else "kept as challenger"
                print(f"{job.name}: v{res['version']} {verdict} ({d['reason']}); "
                      f"trained in {res['train_s']:.1f} s")
    if args.synthetic is None:
        _mirror(cfg, reg)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return 0 if all("error" not in r for r in results) else 1
