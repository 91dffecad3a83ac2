"""`loopline eval`: does the closed loop pay? The same plant twice, loop off and loop on.

Both arms run the real runtime against a twin spawned with the same seed, the same
start time and the same fault schedule (random faults from the seed, plus any
``--inject``), each into its own store. Only the loop differs:

- **off**: detection, alarms and recommendations as usual, but nobody approves and
  nothing executes — a plant that has the alarms but not the loop;
- **on**: the configured autonomy, with a stand-in crew for the people the loop asks:
  a shift lead who approves what is proposed (``--approve auto``), a maintenance crew
  that carries out each work order at its window or within ``crew_response_h`` of
  plant time, whichever comes first (urgent ones within ``urgent_response_h``), and a
  quality engineer who dispositions each hold
  after ``inspect_h`` — scrap when the lot's scrap share is at least twice its
  product's, use-as-is otherwise — through the same approval path as a person.

KPIs come from each arm's store (what a plant manager would see: ISO 22400 OEE,
unplanned downtime, scrap rate, recommendations) and from the twin's ground truth for
what the store cannot know (failures, on-time delivery, false alarms). The truth log
is read only here, after the run, to score it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from core.config import LoadedConfig, load_config
from core.engine.decide import DecisionError
from core.masterdata import load_master_data
from core.statuses import WO_NOT_STARTED
from core.store.db import Store, open_store
from core.store.models import (
    Action,
    Decision,
    Hold,
    HoldLot,
    Lot,
    ProductionOrder,
    Recommendation,
    WorkOrder,
)
from runtime.host import Runtime, RuntimeOptions

REC = Recommendation.__table__  # type: ignore[attr-defined]
DEC = Decision.__table__  # type: ignore[attr-defined]
ACT = Action.__table__  # type: ignore[attr-defined]
WO = WorkOrder.__table__  # type: ignore[attr-defined]
HOLD = Hold.__table__  # type: ignore[attr-defined]
HOLD_LOT = HoldLot.__table__  # type: ignore[attr-defined]
LOT = Lot.__table__  # type: ignore[attr-defined]
ORDER = ProductionOrder.__table__  # type: ignore[attr-defined]

CREW = "system:eval-crew"


@dataclass
class EvalOptions:
    days: float = 7.0
    seed: int = 42
    speed: float = 1800.0
    start: datetime = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    inject: list[str] = field(default_factory=list)
    faults_per_day: float | None = None
    crew_response_h: float = 2.0
    urgent_response_h: float = 0.25
    inspect_h: float = 1.0
    workdir: Path = Path("data/eval")
    ml: bool = False
    models: Path | None = None  # a model registry both arms start from (a copy each)


class Crew:
    """The people of the loop-on arm, acting through the engine's own APIs."""

    def __init__(self, rt: Runtime, opts: EvalOptions) -> None:
        self.rt, self.opts = rt, opts
        self.completed: set[str] = set()
        self.dispositioned: set[str] = set()
        self.errors: list[str] = []

    def step(self) -> None:
        eng = self.rt.engine
        if eng is None:
            return
        now = self.rt.clock.now()
        with self.rt.store.begin() as conn:
            wos = conn.execute(select(WO.c.id, WO.c.window_start, WO.c.created_at,
                                      WO.c.priority).where(
                WO.c.status.in_(WO_NOT_STARTED))).all()
            holds = conn.execute(select(HOLD.c.id, HOLD.c.created_at).where(
                HOLD.c.status == "open")).all()
        for w in wos:
            if w.id in self.completed:
                continue
            urgent = w.priority == 1  # the planner said: do not wait for the window
            due = _utc(w.created_at) + timedelta(
                hours=self.opts.urgent_response_h if urgent else self.opts.crew_response_h)
            if w.window_start is not None and not urgent:
                due = min(due, max(_utc(w.window_start), _utc(w.created_at)))
            if now >= due:
                try:
                    eng.complete_work_order_by_policy(w.id, CREW)
                    self.completed.add(w.id)
                except DecisionError as e:
                    self.errors.append(str(e))
        for h in holds:
            if h.id in self.dispositioned:
                continue
            if now < _utc(h.created_at) + timedelta(hours=self.opts.inspect_h):
                continue
            disposition = self._disposition(h.id)
            try:
                rid = eng.request_release(h.id, disposition, CREW,
                                          "inspected by the evaluation's quality engineer")
                eng.decider.auto_approve(rid, force=True)
                self.dispositioned.add(h.id)
            except DecisionError as e:
                self.errors.append(str(e))
                self.dispositioned.add(h.id)

    def _disposition(self, hold_id: str) -> str:
        """Scrap a lot whose scrap share is at least twice its product's; else use as is."""
        from core.production import PRODUCTION_COUNT as PC

        with self.rt.store.begin() as conn:
            lots = [r.lot_id for r in conn.execute(select(HOLD_LOT.c.lot_id).where(
                HOLD_LOT.c.hold_id == hold_id)).all()]
            per_lot = conn.execute(select(PC.c.lot_id, func.sum(PC.c.good), func.sum(PC.c.scrap))
                                   .where(PC.c.lot_id.in_(lots)).group_by(PC.c.lot_id)).all()
            overall = conn.execute(select(func.sum(PC.c.good), func.sum(PC.c.scrap))).first()
        base = (overall[1] or 0) / max(1, (overall[0] or 0) + (overall[1] or 0)) if overall \
            else 0.0
        for _, good, scrap in per_lot:
            total = (good or 0) + (scrap or 0)
            if total and (scrap or 0) / total >= max(2 * base, 0.02):
                return "scrap"
        return "use_as_is"


ORDER_PERIOD_H = 48.0  # the default plant's order book, repeated every two days


def prepare_plant(loaded: LoadedConfig, opts: EvalOptions) -> Path:
    """A config for the evaluation whose order book lasts the whole run.

    The default plant's master data holds about two days of orders; over a week the
    lines would stand idle and the KPIs would measure an empty plant. The evaluation
    repeats the order book every ``ORDER_PERIOD_H`` (new order ids, the same products,
    quantities and due-date offsets) with fresh warehouse batches of every material,
    writes that master data and a config pointing at it into the work folder. Both
    arms and both twins read the same files.
    """
    import re
    import tomllib

    src = loaded.master_data_path.read_text(encoding="utf-8")
    master = tomllib.loads(src)
    repeats = max(0, math.ceil(opts.days * 24 / ORDER_PERIOD_H) - 1)
    extra: list[str] = []
    for k in range(1, repeats + 1):
        shift = k * ORDER_PERIOD_H
        for o in master.get("orders", []):
            num = int(re.sub(r"\D", "", o["id"]) or 0)
            oid = f"PO-{k}{num % 1000:03d}"
            lines = [f'id = "{oid}"', f'product = "{o["product"]}"',
                     f'quantity = {int(o["quantity"])}',
                     f'release_h = {float(o["release_h"]) + shift:.1f}',
                     f'due_h = {float(o["due_h"]) + shift:.1f}',
                     f'priority = {int(o.get("priority", 3))}']
            if o.get("customer"):
                lines.append(f'customer = "{o["customer"]}"')
            extra.append("[[orders]]\n" + "\n".join(lines) + "\n")
        for b in master.get("batches", []):
            num = int(re.sub(r"\D", "", b["id"]) or 0)
            lines = [f'id = "B-{k}{num % 1000:03d}"', f'material = "{b["material"]}"',
                     f'supplier = "{b.get("supplier", "")}"',
                     f'quantity = {b["quantity"]}', 'location = "WH"']
            extra.append("[[batches]]\n" + "\n".join(lines) + "\n")
    opts.workdir.mkdir(parents=True, exist_ok=True)
    master_path = opts.workdir / "master.toml"
    master_path.write_text(src.rstrip() + "\n\n# repeated by loopline eval\n\n"
                           + "\n".join(extra), encoding="utf-8")
    cfg_text = loaded.path.read_text(encoding="utf-8")
    cfg_text, n = re.subn(r'(?m)^master_data\s*=\s*".*"$',
                          f'master_data = "{master_path.resolve()}"', cfg_text)
    if n != 1:
        cfg_text = f'master_data = "{master_path.resolve()}"\n' + cfg_text
    cfg_path = opts.workdir / "config.toml"
    cfg_path.write_text(cfg_text, encoding="utf-8")
    load_config(cfg_path)  # fail here, clearly, rather than in a twin
    return cfg_path


async def run_arm(loaded: LoadedConfig, opts: EvalOptions, loop_on: bool,
                  log: Any = None) -> dict[str, Any]:
    """One arm: its own store, truth log and twin; returns its KPIs."""
    name = "on" if loop_on else "off"
    arm_dir = opts.workdir / f"arm-{name}"
    arm_dir.mkdir(parents=True, exist_ok=True)
    for p in arm_dir.glob("*"):
        if p.is_file():
            p.unlink()
    db = arm_dir / "loopline.db"
    cfg = load_config(loaded.path, db=str(db))
    if opts.models is not None:  # each arm scores with (and may retrain) its own copy
        models = arm_dir / "models"
        shutil.rmtree(models, ignore_errors=True)
        shutil.copytree(opts.models, models)
        cfg.config.ml.models_dir = str(models)
    store = open_store(cfg.db_url)
    try:
        from core.clock import FrozenClock

        load_master_data(store, cfg, FrozenClock(opts.start))
        truth = arm_dir / "truth.jsonl"
        twin_args = ["--start", opts.start.isoformat().replace("+00:00", "Z")]
        if opts.faults_per_day is not None:
            twin_args += ["--faults-per-day", f"{opts.faults_per_day:g}"]
        from runtime.twin import free_port

        ropts = RuntimeOptions(speed=opts.speed, seed=opts.seed, inject=list(opts.inject),
                               truth=truth, approve="auto" if loop_on else "never",
                               spawn_twin=True, opcua_port=free_port(),
                               modbus_port=free_port(), twin_args=twin_args, ml=opts.ml)
        rt = Runtime(cfg, store, ropts)
        crew = Crew(rt, opts) if loop_on else None
        wall_s = opts.days * 86400 / opts.speed
        await rt.start()
        end_plant = opts.start + timedelta(days=opts.days)
        try:
            while rt.clock.now() < end_plant:
                await asyncio.sleep(min(1.0, wall_s))
                if crew is not None:
                    try:
                        await asyncio.to_thread(crew.step)
                    except Exception as e:  # the crew is a stand-in: note, never stop
                        crew.errors.append(f"{type(e).__name__}: {e}")
                if log is not None:
                    log(name, rt.clock.now(), rt.stats())
        finally:
            summary = await rt.stop()
        kpis = kpis_of(store, truth, opts.start, end_plant)
        kpis["arm"] = name
        kpis["ingest"] = summary.get("ingest", {})
        if crew is not None:
            kpis["crew"] = {"work_orders_completed": len(crew.completed),
                            "holds_dispositioned": len(crew.dispositioned),
                            "errors": crew.errors[-5:]}
        return kpis
    finally:
        store.close()


def kpis_of(store: Store, truth_path: Path, start: datetime, end: datetime) -> dict[str, Any]:
    from core.reports import downtime_report, oee_report, scrap_report

    oee = oee_report(store, "plant", start, end)[0]
    down = downtime_report(store, "plant", start, end, states=("down_unplanned",))
    scrap = scrap_report(store, "plant", start, end)[0]
    truth = _truth(truth_path)
    failures = [t for t in truth if t.get("event") == "failure"]
    faults = [t for t in truth if t.get("event") == "fault_started"]
    due = {t["order"]: t["due"] for t in truth if t.get("event") == "order_released"}
    done = {t["order"]: t["t"] for t in truth if t.get("event") == "order_completed"}
    due_in_window = [o for o, d in due.items() if _parse(d) <= end]
    on_time = sum(1 for o in due_in_window if o in done and done[o] <= due[o])
    with store.begin() as conn:
        recs = conn.execute(select(REC.c.id, REC.c.decision_class, REC.c.target, REC.c.status,
                                   REC.c.created_at).where(
            ~REC.c.problem_key.like("request:%"))).all()
        approved = conn.execute(select(func.count(func.distinct(DEC.c.recommendation_id)))
                                .where(DEC.c.verdict == "approved")).scalar() or 0
        executed = conn.execute(select(func.count()).select_from(ACT).where(
            ACT.c.status == "done")).scalar() or 0
    false_alarms = 0
    for r in recs:
        if r.decision_class != "work_order":
            continue
        at = _utc(r.created_at)
        real = any(f.get("equipment") == r.target and _parse(f["t"]) <= at + timedelta(hours=1)
                   and _parse(f.get("failure_at") or f["t"]) >= at - timedelta(hours=24)
                   for f in faults)
        false_alarms += 0 if real else 1
    return {
        "oee": oee.oee, "availability": oee.availability, "performance": oee.performance,
        "quality": oee.quality,
        "unplanned_downtime_h": sum(r["seconds"] for r in down) / 3600,
        "scrap_rate": scrap["scrap_rate"], "good": scrap["good"], "scrap": scrap["scrap"],
        "failures": len(failures), "faults": len(faults),
        "orders_due": len(due_in_window), "orders_on_time": on_time,
        "on_time_delivery": on_time / len(due_in_window) if due_in_window else None,
        "recommendations": len(recs), "accepted": int(approved), "executed": int(executed),
        "work_order_false_alarms": false_alarms,
    }


DIFF_ROWS = (
    ("oee", "OEE", "pct"), ("availability", "availability", "pct"),
    ("performance", "performance", "pct"), ("quality", "quality", "pct"),
    ("unplanned_downtime_h", "unplanned downtime h", "num"),
    ("scrap_rate", "scrap rate", "pct"), ("failures", "failures (truth)", "int"),
    ("on_time_delivery", "on-time delivery", "pct"),
    ("recommendations", "recommendations made", "int"), ("accepted", "accepted", "int"),
    ("executed", "actions executed", "int"),
    ("work_order_false_alarms", "work-order false alarms", "int"),
)


def compare(off: dict[str, Any], on: dict[str, Any]) -> dict[str, Any]:
    """Side by side with the difference (on − off) and the relative change where it reads."""
    rows = []
    for key, label, kind in DIFF_ROWS:
        a, b = off.get(key), on.get(key)
        diff = (b - a) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
        rel = (diff / a) if diff is not None and a else None
        rows.append({"kpi": key, "label": label, "kind": kind, "off": a, "on": b,
                     "diff": diff, "relative": rel})
    return {"rows": rows, "off": off, "on": on}


async def evaluate(loaded: LoadedConfig, opts: EvalOptions, log: Any = None) -> dict[str, Any]:
    plant = load_config(prepare_plant(loaded, opts))
    off = await run_arm(plant, opts, loop_on=False, log=log)
    on = await run_arm(plant, opts, loop_on=True, log=log)
    res = compare(off, on)
    res["options"] = {"days": opts.days, "seed": opts.seed, "speed": opts.speed,
                      "start": opts.start.isoformat(), "inject": opts.inject,
                      "faults_per_day": opts.faults_per_day}
    return res


def _truth(path: Path) -> list[dict[str, Any]]:
    out = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _utc(v: datetime) -> datetime:
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


