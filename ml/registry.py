"""Model registry under [ml] models_dir: versions, champion/challenger, rollback.

Layout: ``<dir>/manifest.json`` lists every version of every model (status, training
window, features, hold-out metrics, promotion history); ``<dir>/<name>/v<N>/`` holds the
boosters as UBJSON, ``meta.json`` and the recipe baselines as Parquet. A challenger
becomes champion only when it beats the champion on the same hold-out (the challenger's,
both scored by their own pipelines); rollback retires the champion and brings back the
one it replaced. The manifest is replaced atomically under a file lock, so a scoring
process never reads a half-written file.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import xgboost as xgb

from ml.features import FeatureSpec
from ml.models import PRIMARY, Model

STATUSES = ("challenger", "champion", "retired")


class RegistryError(ValueError):
    """A registry request that cannot be met (unknown model, nothing to roll back to)."""


@dataclass
class Decision:
    promoted: bool
    reason: str
    metric: str
    challenger: float | None
    champion: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"promoted": self.promoted, "reason": self.reason, "metric": self.metric,
                "challenger": self.challenger, "champion": self.champion}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _iso(d: datetime | None) -> str | None:
    return d.isoformat() if d is not None else None


def better(kind: str, new: dict[str, Any], old: dict[str, Any]) -> tuple[bool, str, float | None,
                                                                          float | None]:
    """Strictly better on the kind's primary metric (secondary when it is undefined)."""
    metric, way = PRIMARY[kind]
    a, b = new.get(metric), old.get(metric)
    if (a is None or b is None) and kind in ("failure", "scrap"):
        metric, way = "logloss", "min"
        a, b = new.get(metric), old.get(metric)
    if a is None:
        return False, metric, a, b
    if b is None:
        return True, metric, a, b
    return (a > b if way == "max" else a < b), metric, a, b


class Registry:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -------------------------------------------------------------- manifest

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"format": 1, "models": {}}
        except (OSError, json.JSONDecodeError) as e:
            raise RegistryError(f"{self.manifest_path}: unreadable manifest ({e})") from None
        return data

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._read()
            yield data
            tmp = self.manifest_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, self.manifest_path)

    def versions(self, name: str | None = None) -> list[dict[str, Any]]:
        models = self._read()["models"]
        if name is not None and name not in models:
            raise RegistryError(f"no model named {name!r} (known: {', '.join(models) or 'none'})")
        names = [name] if name else sorted(models)
        return [v for n in names for v in models[n]["versions"]]

    def names(self) -> list[str]:
        return sorted(self._read()["models"])

    def champion(self, name: str) -> dict[str, Any] | None:
        return next((v for v in self.versions(name) if v["status"] == "champion"), None)

    def history(self, name: str) -> list[dict[str, Any]]:
        return list(self._read()["models"].get(name, {}).get("history", []))

    # -------------------------------------------------------------- save / load

    def save(self, model: Model, note: str = "") -> dict[str, Any]:
        """Store a trained model as a new challenger version."""
        with self._locked() as data:
            entry = data["models"].setdefault(model.name, {"versions": [], "history": []})
            version = 1 + max((v["version"] for v in entry["versions"]), default=0)
            d = self.root / model.name / f"v{version}"
            d.mkdir(parents=True, exist_ok=True)
            files = []
            for part, b in model.boosters.items():
                b.save_model(str(d / f"{part}.ubj"))
                files.append(f"{part}.ubj")
            if model.baselines is not None:
                model.baselines.write_parquet(d / "baselines.parquet")
                files.append("baselines.parquet")
            meta = {
                "name": model.name, "kind": model.kind, "features": model.features,
                "categories": model.categories,
                "spec": model.spec.as_dict() if model.spec else None, "params": model.params,
                "reference": model.reference, "medians": model.medians,
                "resid_scale": model.resid_scale,
            }
            (d / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
            rec = {
                "name": model.name, "version": version, "kind": model.kind,
                "status": "challenger", "created": _now(),
                "train_window": [_iso(model.train_window[0]), _iso(model.train_window[1])]
                if model.train_window else None,
                "holdout_start": _iso(model.holdout_start),
                "features": sorted({f for v in model.features.values() for f in v}),
                "metrics": model.metrics, "train_s": round(model.train_s, 3),
                "path": str(d.relative_to(self.root)), "files": files, "note": note,
            }
            entry["versions"].append(rec)
        return rec

    def load(self, name: str, version: int | None = None) -> Model:
        """A stored model; without a version, the champion."""
        recs = self.versions(name)
        if version is None:
            rec = next((v for v in recs if v["status"] == "champion"), None)
            if rec is None:
                raise RegistryError(f"model {name!r} has no champion yet")
        else:
            rec = next((v for v in recs if v["version"] == version), None)
            if rec is None:
                raise RegistryError(f"model {name!r} has no version {version}")
        d = self.root / rec["path"]
        meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
        boosters = {}
        for part in meta["features"]:
            b = xgb.Booster()
            b.load_model(str(d / f"{part}.ubj"))
            boosters[part] = b
        baselines = pl.read_parquet(d / "baselines.parquet") if (
            d / "baselines.parquet").exists() else None
        tw = rec.get("train_window") or [None, None]
        return Model(
            name=name, kind=meta["kind"], boosters=boosters, features=meta["features"],
            categories=meta["categories"],
            spec=FeatureSpec.from_dict(meta["spec"]) if meta["spec"] else None,
            baselines=baselines, params=meta["params"],
            train_window=(datetime.fromisoformat(tw[0]), datetime.fromisoformat(tw[1]))
            if tw[0] else None,
            holdout_start=datetime.fromisoformat(rec["holdout_start"])
            if rec.get("holdout_start") else None,
            metrics=rec["metrics"], reference=meta["reference"], medians=meta["medians"],
            resid_scale=meta["resid_scale"],
        )

    # -------------------------------------------------------------- lifecycle

    def promote_if_better(self, name: str, version: int,
                          evaluate: Callable[[Model], dict[str, Any]]) -> Decision:
        """Champion only if it beats the champion on the same hold-out (``evaluate``)."""
        challenger = self.load(name, version)
        champ_rec = self.champion(name)
        new = evaluate(challenger)
        if champ_rec is None:
            dec = Decision(True, "no champion yet", PRIMARY[challenger.kind][0],
                           new.get(PRIMARY[challenger.kind][0]), None)
        elif champ_rec["version"] == version:
            raise RegistryError(f"{name} v{version} is already the champion")
        else:
            old = evaluate(self.load(name, champ_rec["version"]))
            ok, metric, a, b = better(challenger.kind, new, old)
            why = (f"beats v{champ_rec['version']} on {metric}" if ok
                   else f"does not beat v{champ_rec['version']} on {metric}")
            dec = Decision(ok, why, metric, a, b)
        self._record(name, version, dec, new)
        return dec

    def _record(self, name: str, version: int, dec: Decision, metrics: dict[str, Any]) -> None:
        with self._locked() as data:
            entry = data["models"][name]
            for v in entry["versions"]:
                if v["version"] == version:
                    v["holdout_metrics"] = metrics
                    v["decision"] = dec.as_dict()
                    if dec.promoted:
                        v["status"] = "champion"
                        v["promoted"] = _now()
                elif dec.promoted and v["status"] == "champion":
                    v["status"] = "retired"
                    v["retired"] = _now()
                    entry["history"].append({"ts": _now(), "action": "replaced",
                                             "from": v["version"], "to": version})
            if dec.promoted:
                entry["history"].append({"ts": _now(), "action": "promoted", "to": version,
                                         "reason": dec.reason})

    def promote(self, name: str, version: int, reason: str = "manual") -> None:
        """Force a version to champion (an operator's decision, recorded as such)."""
        self.load(name, version)
        self._record(name, version, Decision(True, reason, "", None, None), {})

    def rollback(self, name: str) -> dict[str, Any]:
        """Retire the champion and reinstate the champion it replaced."""
        with self._locked() as data:
            entry = data["models"].get(name)
            if entry is None:
                raise RegistryError(f"no model named {name!r}")
            by_v = {v["version"]: v for v in entry["versions"]}
            cur = next((v for v in entry["versions"] if v["status"] == "champion"), None)
            if cur is None:
                raise RegistryError(f"model {name!r} has no champion to roll back")
            prev = next((h["from"] for h in reversed(entry["history"])
                         if h["action"] == "replaced" and h["to"] == cur["version"]
                         and by_v.get(h["from"], {}).get("status") == "retired"), None)
            if prev is None:
                raise RegistryError(f"{name} v{cur['version']} replaced no earlier champion: "
                                    "nothing to roll back to")
            cur["status"], cur["retired"] = "retired", _now()
            by_v[prev]["status"], by_v[prev]["promoted"] = "champion", _now()
            entry["history"].append({"ts": _now(), "action": "rollback",
                                     "from": cur["version"], "to": prev})
            return by_v[prev]

    def delete_files(self, name: str, version: int) -> None:
        """Drop a retired version's files (the manifest keeps its record)."""
        rec = next((v for v in self.versions(name) if v["version"] == version), None)
        if rec is None or rec["status"] != "retired":
            raise RegistryError("only a retired version's files can be deleted")
        shutil.rmtree(self.root / rec["path"], ignore_errors=True)
