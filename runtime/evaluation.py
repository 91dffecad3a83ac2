"""`loopline eval`: does the closed loop pay? The same plant twice, loop off and loop on.

Both arms run the real runtime against a twin spawned with the same seed, the same
start time and the same fault schedule (random faults from the seed, plus any
``--inject``), each into its own store. Only the loop differs:

- **off**: detection, alarms and recommendations as usual, but nobody approves and
  nothing executes — a plant that has the alarms but not the loop;
- **on**: the configured autonomy, with a stand-in crew for the people the loop asks:
  a shift lead who approves what is proposed (``--approve auto``), a maintenance crew
  that carries out each work order in the maintenance window it was planned into, or,
  without one, within ``crew_response_h`` of plant time (urgent ones within
  ``urgent_response_h``), and a
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
from runtime.scenarios import Scenario, dump_master, find_scenario, load_scenario, scenario_master

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
    scenario: str = "default"  # a name in data/scenarios/ or a path to a scenario file
    seeds: int = 1  # seeds seed, seed+1, ...: the A/B once per seed, paired


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
            if w.window_start is not None and not urgent:  # the planner's slot
                due = max(_utc(w.window_start), _utc(w.created_at))
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


def prepare_plant(loaded: LoadedConfig, opts: EvalOptions,
                  seed: int | None = None) -> tuple[Path, Scenario]:
    """The config and master data the scenario's plant runs on, in the work folder.

    The plant's master data with the scenario's order book (the default plant's repeated
    every two days, or one generated to a load — see runtime.scenarios), its batches and
    changeover minutes; the config is the same but for the master-data path. Both arms
    (and both twins) read these files; the twin also gets the scenario's reliability.
    """
    import re
    import tomllib

    sc = load_scenario(find_scenario(opts.scenario, loaded.base_dir))
    master = tomllib.loads(loaded.master_data_path.read_text(encoding="utf-8"))
    master = scenario_master(master, sc, opts.days, opts.seed if seed is None else seed)
    opts.workdir.mkdir(parents=True, exist_ok=True)
    master_path = opts.workdir / "master.toml"
    master_path.write_text(dump_master(master), encoding="utf-8")
    cfg_text = loaded.path.read_text(encoding="utf-8")
    cfg_text, n = re.subn(r'(?m)^master_data\s*=\s*".*"$',
                          f'master_data = "{master_path.resolve()}"', cfg_text)
    if n != 1:
        cfg_text = f'master_data = "{master_path.resolve()}"\n' + cfg_text
    cfg_path = opts.workdir / "config.toml"
    cfg_path.write_text(cfg_text, encoding="utf-8")
    load_config(cfg_path)  # fail here, clearly, rather than in a twin
    return cfg_path, sc


async def run_arm(loaded: LoadedConfig, opts: EvalOptions, loop_on: bool,
                  log: Any = None, seed: int | None = None,
                  scenario: Scenario | None = None) -> dict[str, Any]:
    """One arm: its own store, truth log and twin; returns its KPIs."""
    name = "on" if loop_on else "off"
    seed = opts.seed if seed is None else seed
    # one seed: data/eval/arm-on; several: data/eval/seed-43/arm-on (each kept to read)
    arm_dir = opts.workdir / (f"arm-{name}" if opts.seeds <= 1 else f"seed-{seed}/arm-{name}")
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
        fpd = opts.faults_per_day if opts.faults_per_day is not None else (
            scenario.faults_per_day if scenario is not None else None)
        if fpd is not None:
            twin_args += ["--faults-per-day", f"{fpd:g}"]
        if scenario is not None and scenario.has_reliability:
            twin_args += ["--reliability", str(scenario.path.resolve())]
        from runtime.twin import free_port

        ropts = RuntimeOptions(speed=opts.speed, seed=seed, inject=list(opts.inject),
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
        kpis["seed"] = seed
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
    setup = downtime_report(store, "plant", start, end, states=("setup",))
    scrap = scrap_report(store, "plant", start, end)[0]
    truth = _truth(truth_path)
    with store.begin() as conn:
        recs = conn.execute(select(REC.c.id, REC.c.decision_class, REC.c.target, REC.c.status,
                                   REC.c.created_at).where(
            ~REC.c.problem_key.like("request:%"))).all()
        approved = conn.execute(select(func.count(func.distinct(DEC.c.recommendation_id)))
                                .join(REC, REC.c.id == DEC.c.recommendation_id)
                                .where(DEC.c.verdict == "approved",
                                       ~REC.c.problem_key.like("request:%"))).scalar() or 0
        executed = conn.execute(select(func.count()).select_from(ACT).where(
            ACT.c.status == "done")).scalar() or 0
        holds = conn.execute(select(HOLD.c.disposition).where(
            HOLD.c.status == "closed")).all()
    wo_recs = [(r.target, _utc(r.created_at)) for r in recs if r.decision_class == "work_order"]
    delivery = delivery_of(truth, end)
    maint = maintenance_of(truth, wo_recs)
    days = []
    t = start
    while t < end:
        nxt = min(end, t + timedelta(days=1))
        days.append(oee_report(store, "plant", t, nxt)[0].oee)
        t = nxt
    per_machine: dict[str, float] = {}
    for r in downtime_report(store, "equipment", start, end, states=("down_unplanned",)):
        per_machine[r["group"]] = per_machine.get(r["group"], 0.0) + r["seconds"] / 3600
    return {
        "oee": oee.oee, "availability": oee.availability, "performance": oee.performance,
        "quality": oee.quality,
        "unplanned_downtime_h": sum(r["seconds"] for r in down) / 3600,
        "changeover_h": sum(r["seconds"] for r in setup) / 3600,
        "scrap_rate": scrap["scrap_rate"], "good": scrap["good"], "scrap": scrap["scrap"],
        **delivery, **maint, **defects_of(truth),
        "recommendations": len(recs), "accepted": int(approved), "executed": int(executed),
        "approved_share": int(approved) / len(recs) if recs else None,
        "holds_closed": len(holds),
        "holds_needless": sum(1 for h in holds if h.disposition == "use_as_is"),
        "oee_per_day": days, "downtime_per_machine_h": per_machine,
    }


def defects_of(truth: list[dict[str, Any]]) -> dict[str, Any]:
    """Defective units caught and escaped (the twin's vision truth, ``sim.vision``).

    Caught: a true defect the station rejected (sorted out), or one it passed in a lot
    that is held at the end (the loop's hold stopped it). Escaped: a true defect passed
    in a lot that shipped (completed). Units still in WIP at the end are neither. The
    false-reject rate is over the clean units of the lots that left the station.
    """
    units = [t for t in truth if t.get("event") == "vision_unit"]
    shipped = {t["lot"] for t in truth if t.get("event") == "lot_completed"}
    held: dict[str, bool] = {}
    for t in truth:
        if t.get("event") in ("lot_held", "lot_released"):
            held[t["lot"]] = t["event"] == "lot_held"
    bad = [u for u in units if u["true"]]
    by_station = sum(1 for u in bad if not u["passed"])
    passed = [u for u in bad if u["passed"]]
    by_hold = sum(1 for u in passed if held.get(u["lot"]) and u["lot"] not in shipped)
    escaped = sum(1 for u in passed if u["lot"] in shipped)
    lots = [t for t in truth if t.get("event") == "vision_lot"]
    clean = sum(t["inspected"] - t["defective"] for t in lots)
    fr = sum(t["false_rejects"] for t in lots)
    return {"defects_true": len(bad), "defects_caught": by_station + by_hold,
            "defects_caught_by_hold": by_hold, "defects_escaped": escaped,
            "false_rejects": fr, "false_reject_rate": fr / clean if clean else None}


def delivery_of(truth: list[dict[str, Any]], end: datetime) -> dict[str, Any]:
    """On-time delivery and tardiness of the orders due by ``end`` (the twin's truth).

    An order due in the window but not finished by its end counts as late, with the
    tardiness it has reached at the end (a lower bound)."""
    due = {t["order"]: _parse(t["due"]) for t in truth if t.get("event") == "order_released"}
    done = {t["order"]: _parse(t["t"]) for t in truth if t.get("event") == "order_completed"}
    in_window = [o for o, d in due.items() if d <= end]
    late_h = [max(0.0, ((done.get(o) or end) - due[o]).total_seconds() / 3600)
              for o in in_window]
    on_time = sum(1 for o in in_window if o in done and done[o] <= due[o])
    shipped = sum(int(t.get("good") or 0) for t in truth if t.get("event") == "lot_completed")
    return {"orders_due": len(in_window), "orders_on_time": on_time,
            "on_time_delivery": on_time / len(in_window) if in_window else None,
            "mean_tardiness_h": sum(late_h) / len(late_h) if late_h else None,
            "throughput_good": shipped}


def maintenance_of(truth: list[dict[str, Any]],
                   wo_recs: list[tuple[str, datetime]]) -> dict[str, Any]:
    """Work-order recommendations scored against the twin's faults and failures.

    A recommendation is real when a fault on its equipment had begun (at most an hour
    later) and had not yet ended its course 24 h before; else a false alarm. A wear
    fault is warned when a work order was recommended for its machine during its
    course; lead time is from the first such recommendation to the failure the twin
    had scheduled (whether or not the loop then prevented it). A failure is missed
    when no recommendation for its machine came during the fault's course."""
    faults = [t for t in truth if t.get("event") == "fault_started"]
    false_alarms = 0
    for eq, at in wo_recs:
        real = any(f.get("equipment") == eq and _parse(f["t"]) <= at + timedelta(hours=1)
                   and _parse(f.get("failure_at") or f.get("ends_at") or f["t"])
                   >= at - timedelta(hours=24) for f in faults)
        false_alarms += 0 if real else 1
    wear = [f for f in faults if f.get("failure_at")]
    leads: list[float] = []
    warned: set[tuple[str, str]] = set()
    for f in wear:
        began, fail = _parse(f["t"]), _parse(f["failure_at"])
        first = min((at for eq, at in wo_recs if eq == f["equipment"] and began - timedelta(
            hours=1) <= at <= fail), default=None)
        if first is not None:
            leads.append((fail - first).total_seconds() / 3600)
            warned.add((f["equipment"], f["t"]))
    failures = [t for t in truth if t.get("event") == "failure"]
    missed = 0
    for x in failures:
        at = _parse(x["t"])
        course = [f for f in wear if f["equipment"] == x.get("equipment")
                  and _parse(f["t"]) <= at]
        f = max(course, key=lambda f: f["t"], default=None)
        if f is None or (f["equipment"], f["t"]) not in warned:
            missed += 1
    prevented = sum(1 for t in truth if t.get("event") == "wo_completed"
                    and t.get("fault_was_active") and t.get("would_have_failed_at"))
    return {"failures": len(failures), "faults": len(faults), "wear_faults": len(wear),
            "work_order_false_alarms": false_alarms, "failures_missed": missed,
            "failures_prevented": prevented, "wear_faults_warned": len(warned),
            "mean_lead_time_h": sum(leads) / len(leads) if leads else None}


# key, label, kind (pct: a share shown in points; num; int), better: +1 up, -1 down, 0
DIFF_ROWS = (
    ("oee", "OEE", "pct", 1), ("availability", "availability", "pct", 1),
    ("performance", "performance", "pct", 1), ("quality", "quality", "pct", 1),
    ("throughput_good", "throughput (good units shipped)", "int", 1),
    ("unplanned_downtime_h", "unplanned downtime h", "num", -1),
    ("changeover_h", "changeover time h", "num", -1),
    ("scrap_rate", "scrap rate", "pct", -1),
    ("on_time_delivery", "on-time delivery", "pct", 1),
    ("mean_tardiness_h", "mean tardiness h", "num", -1),
    ("failures", "failures (truth)", "int", -1),
    ("failures_prevented", "failures prevented", "int", 1),
    ("failures_missed", "failures missed", "int", -1),
    ("mean_lead_time_h", "warning lead time h", "num", 1),
    ("work_order_false_alarms", "work-order false alarms", "int", -1),
    ("defects_caught", "defective units caught (vision, holds)", "int", 1),
    ("defects_escaped", "defective units shipped", "int", -1),
    ("holds_closed", "holds dispositioned", "int", 0),
    ("holds_needless", "holds needless (use as is)", "int", -1),
    ("recommendations", "recommendations made", "int", 0),
    ("accepted", "recommendations approved", "int", 0),
    ("approved_share", "share approved", "pct", 0),
    ("executed", "actions executed", "int", 0),
)

# two-sided 97.5 % quantiles of Student's t, by degrees of freedom
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131,
        16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 30: 2.042,
        40: 2.021, 60: 2.000, 120: 1.980}


def t975(df: int) -> float:
    """Student's t 0.975 quantile (the next tabulated df at or below ``df``)."""
    return T975[max(k for k in T975 if k <= df)] if df >= 1 else math.inf


def paired_interval(off: list[float], on: list[float]) -> dict[str, Any]:
    """Mean paired difference (on − off) with its 95 % t-interval over the seeds.

    Significant when the interval excludes zero; one seed gives no interval."""
    d = [b - a for a, b in zip(off, on, strict=True)]
    n = len(d)
    if n == 0:
        return {"n": 0, "diff": None, "lo": None, "hi": None, "significant": False}
    mean = sum(d) / n
    if n < 2:
        return {"n": 1, "diff": mean, "lo": None, "hi": None, "significant": False}
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return {"n": n, "diff": mean, "sd": sd, "lo": mean - half, "hi": mean + half,
            "significant": (mean - half > 0) or (mean + half < 0)}


def compare_seeds(offs: list[dict[str, Any]], ons: list[dict[str, Any]]) -> dict[str, Any]:
    """Each KPI's mean per arm and the paired difference's interval over the seeds (a
    seed where either arm has no value for the KPI drops out of that KPI's pairs)."""
    rows = []
    for key, label, kind, better in DIFF_ROWS:
        pairs = [(a.get(key), b.get(key)) for a, b in zip(offs, ons, strict=True)]
        pairs = [(float(a), float(b)) for a, b in pairs
                 if isinstance(a, (int, float)) and isinstance(b, (int, float))]
        off_m = sum(a for a, _ in pairs) / len(pairs) if pairs else None
        on_m = sum(b for _, b in pairs) / len(pairs) if pairs else None
        ci = paired_interval([a for a, _ in pairs], [b for _, b in pairs])
        rel = ci["diff"] / off_m if ci["diff"] is not None and off_m else None
        verdict = ""
        if ci["significant"] and better:
            verdict = "better" if (ci["diff"] > 0) == (better > 0) else "worse"
        rows.append({"kpi": key, "label": label, "kind": kind, "better": better,
                     "off": off_m, "on": on_m, "diff": ci["diff"], "lo": ci["lo"],
                     "hi": ci["hi"], "n": ci["n"], "significant": ci["significant"],
                     "verdict": verdict, "relative": rel})
    return {"rows": rows, "off": offs[0] if len(offs) == 1 else None,
            "on": ons[0] if len(ons) == 1 else None, "seeds": [
                {"seed": a.get("seed"), "off": a, "on": b} for a, b in zip(offs, ons,
                                                                          strict=True)]}


def compare(off: dict[str, Any], on: dict[str, Any]) -> dict[str, Any]:
    """Side by side with the difference (on − off) and the relative change where it reads."""
    return compare_seeds([off], [on])


async def evaluate(loaded: LoadedConfig, opts: EvalOptions, log: Any = None) -> dict[str, Any]:
    offs, ons = [], []
    scenario: Scenario | None = None
    for k in range(max(1, opts.seeds)):
        seed = opts.seed + k
        cfg_path, scenario = prepare_plant(loaded, opts, seed)
        plant = load_config(cfg_path)
        offs.append(await run_arm(plant, opts, loop_on=False, log=log, seed=seed,
                                  scenario=scenario))
        ons.append(await run_arm(plant, opts, loop_on=True, log=log, seed=seed,
                                 scenario=scenario))
    res = compare_seeds(offs, ons)
    res["options"] = {"days": opts.days, "seed": opts.seed, "seeds": max(1, opts.seeds),
                      "speed": opts.speed, "start": opts.start.isoformat(),
                      "inject": opts.inject, "faults_per_day": opts.faults_per_day,
                      "scenario": scenario.name if scenario else opts.scenario,
                      "ml": opts.ml}
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


