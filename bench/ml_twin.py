"""The plant twin as an ML data source: days of history in seconds, in the store's frames.

Not a benchmark itself (no ``bench_`` prefix); ``bench_ml`` and tests/ml use it. The
twin's core (``sim.plant.Plant``) is stepped in-process with a fixed seed, injected and
random faults, and what the runtime would have stored is turned into exactly the frames
``ml.store_source.StoreSource`` returns, through the same conversions
(``ml.contract.history``, ``ml.store_source.events_from_rows`` / ``lot_quality``):

- history: one sample per numeric tag every ``sample_s`` twin seconds (a poll), with the
  production context the contextualizer stamps (line, lot, order, recipe, batch, shift,
  operator); Bad with a null value while the machine's comms are down.
- events: state intervals as ``core.production`` writes them (a change closes one and
  opens the next, comm loss opens ``unknown``/``no data``; the open one ends at the end
  of the data); each repair after a failure is a corrective work order completed then,
  as maintenance signs it off in the console.
- quality: every finished unit is a measurement of its product's characteristic
  (``<product>.<name>`` as master data names it) against its limits, folded per lot.

The twin's ground truth stays beside the frames for scoring only; ml/ never sees it.
ml/ and core/ must not import sim, which is why this lives in bench/.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from core.config import load_config
from core.config.loader import LoadedConfig
from core.production import STATES
from ml import contract
from ml.contract import Events
from ml.features import DEFAULT_SIGNALS
from ml.store_source import events_from_rows, lot_quality
from sim.master import Master, load_master
from sim.physics import DEGRADATIONS
from sim.plant import Plant, renumber
from sim.truth import TruthLog

START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)  # a Monday, start of the early shift
ROOT = Path(__file__).resolve().parents[1]
SIGNALS = (*DEFAULT_SIGNALS, "quality_value")
BOOK_PERIOD_H = 24.0  # the master order book is repeated daily: lines A and B stay busy


@dataclass
class TwinData:
    """Frames in the history contract plus the twin's ground truth (for scoring only)."""

    history: pl.DataFrame
    events: Events
    quality: pl.DataFrame | None
    truth: list[dict[str, Any]]
    equipment: list[str]
    start: datetime = START

    def at(self, hours: float) -> datetime:
        return self.start + timedelta(hours=hours)

    @property
    def end(self) -> datetime:
        return self.history["ts"].max()  # type: ignore[return-value]

    def failures(self) -> pl.DataFrame:
        """(equipment_id, kind, ts) of every failure the twin logged."""
        rows = [(e["equipment"], e["kind"], _t(e["t"])) for e in self.truth
                if e["event"] == "failure"]
        return pl.DataFrame(rows, schema={"equipment_id": pl.String, "kind": pl.String,
                                          "ts": contract.TS}, orient="row")

    def until(self, end: datetime) -> tuple[pl.DataFrame, Events]:
        """History and events as StoreSource would return them at ``end``: intervals still
        open then end at ``end``, later ones and later work orders do not exist yet."""
        ev = self.events
        states = ev.states.filter(pl.col("start") <= end).with_columns(
            pl.min_horizontal("end", pl.lit(end, dtype=contract.TS)).alias("end"))
        return (self.history.filter(pl.col("ts") <= end),
                Events(states, ev.maintenance.filter(pl.col("ts") <= end)).conformed())

    def down(self, at: datetime) -> set[str]:
        """Equipment in an unplanned down (failed, under repair) at ``at``."""
        d = self.events.unplanned().filter((pl.col("start") <= at) & (pl.col("end") > at))
        return set(d["equipment_id"].to_list())

    def degradations(self) -> list[dict[str, Any]]:
        """Degradation faults: equipment, kind, source, start and when it failed (or None)."""
        out = []
        for e in self.truth:
            if e["event"] == "fault_started" and e["kind"] in DEGRADATIONS:
                out.append({"equipment": e["equipment"], "kind": e["kind"],
                            "source": e["source"], "start": _t(e["t"]),
                            "failure_at": _t(e["failure_at"])})
        return out

    def degrading(self, at: datetime) -> set[str]:
        """Equipment with a degradation under way at ``at`` (started, not yet failed)."""
        return {d["equipment"] for d in self.degradations()
                if d["start"] <= at < d["failure_at"]}


def prepend(runs: list[TwinData], history: pl.DataFrame, events: Events
            ) -> tuple[pl.DataFrame, Events]:
    """Other twin runs (other seeds) as earlier history of the same plant: each is shifted
    back by its own length so they end where the next one (finally ``history``) starts.
    More failures to learn from; the evaluation run's own later part stays unseen."""
    hs, states, maint = [history], [events.states], [events.maintenance]
    shift = timedelta(0)
    for run in runs:
        shift += run.end - run.start + timedelta(seconds=1)
        hs.insert(0, run.history.with_columns(pl.col("ts") - shift))
        states.insert(0, run.events.states.with_columns(pl.col("start") - shift,
                                                        pl.col("end") - shift))
        maint.insert(0, run.events.maintenance.with_columns(pl.col("ts") - shift))
    return pl.concat(hs), Events(pl.concat(states), pl.concat(maint)).conformed()


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def long_running_master(master: Master, days: float) -> Master:
    """The order book repeated every day and enough material for it.

    The shipped book releases its last order after ~51 h; a week of history needs a
    plant that keeps producing. Repeats get ids as ``--scale`` copies do (+10000 per
    repeat); extra batches wait in the warehouse (the twin draws which ones are bad).
    """
    k = int(days * 24 // BOOK_PERIOD_H) + 1
    orders = [dataclasses.replace(o, id=renumber(o.id, c + 1),
                                  release_h=o.release_h + c * BOOK_PERIOD_H,
                                  due_h=o.due_h + c * BOOK_PERIOD_H)
              for c in range(k) for o in master.orders]
    batches = list(master.batches) + [
        dataclasses.replace(b, id=renumber(b.id, c + 1), location="WH")
        for c in range(1, k) for b in master.batches]
    return dataclasses.replace(master, orders=orders, batches=batches)


def generate(days: float, *, seed: int = 7, faults_per_day: float = 0.0,
             injections: Iterable[tuple[str, str, float]] = (), sample_s: int = 60,
             lines: list[str] | None = None, scale: int = 1,
             cfg: LoadedConfig | None = None) -> TwinData:
    """Run the twin for ``days`` and return what the store would hold.

    ``injections`` are (kind, equipment, hours after start).
    """
    cfg = cfg or load_config(ROOT / "config.toml")
    master = long_running_master(load_master(cfg.master_data_path), days)
    truth = TruthLog(None)
    plant = Plant(cfg, master, seed=seed, start=START, truth=truth, scale=scale, lines=lines,
                  random_faults_per_day=faults_per_day)
    for kind, eq, at_h in injections:
        plant.inject(kind, eq, int(at_h * 3600))
    chars = {p: (f"{p}.{v.characteristic.name}", v.characteristic.lsl, v.characteristic.usl)
             for p, v in master.products.items()}
    machines = list(plant.machines.values())
    tags = {m.id: [(t.id, t.name) for t in plant.loaded.tags_for(m.id) if t.name in SIGNALS]
            for m in machines}
    cols: dict[str, list[Any]] = {c: [] for c in ("tag_id", "ts", "value", "quality",
                                                  *contract.CONTEXT)}
    state: dict[str, tuple[str, str, datetime]] = {}  # equipment -> open interval
    states: list[tuple[Any, ...]] = []
    units = {m.id: m.good_count + m.scrap_count for m in machines}
    measurements: list[tuple[Any, ...]] = []
    for _ in range(int(days * 86400)):
        plant.step()
        t = plant.t
        now = plant.now()
        for m in machines:
            ok = m.comms_ok(t)
            st = (STATES[m.state], m.reason) if ok else ("unknown", "no data")
            cur = state.get(m.id)
            if cur is None or cur[0] != st[0]:
                if cur is not None:
                    states.append((m.id, cur[0], cur[1], cur[2], now))
                state[m.id] = (st[0], st[1], now)
            n = m.good_count + m.scrap_count
            if n != units[m.id]:
                units[m.id] = n
                if ok and m.lot is not None:
                    cid, lsl, usl = chars[m.lot.product]
                    v = m.quality_value
                    measurements.append((m.lot.id, cid, now, not lsl <= v <= usl, v))
        if t % sample_s:
            continue
        for m in machines:
            _sample(cols, m, tags[m.id], now, m.comms_ok(t))
    for eq, (st, reason, since) in state.items():
        states.append((eq, st, reason, since, plant.now()))
    history = contract.history(pl.DataFrame(cols, schema={
        "tag_id": pl.String, "ts": contract.TS, "value": pl.Float64, "quality": pl.Int8,
        **{c: pl.String for c in contract.CONTEXT}})).sort("ts", "tag_id")
    maint, down = [], {}
    for e in truth.events:
        if e["event"] == "failure":
            down[e["equipment"]] = e["kind"]
        elif e["event"] == "repaired" and e["equipment"] in down:
            maint.append((e["equipment"], down.pop(e["equipment"]), _t(e["t"])))
    return TwinData(history, events_from_rows(states, maint), lot_quality(measurements),
                    truth.events, list(plant.machines))


def _sample(cols: dict[str, list[Any]], m: Any, tags: list[tuple[str, str]], now: datetime,
            ok: bool) -> None:
    """One poll of a machine's numeric tags, stamped with its production context."""
    snap = m.snapshot() if ok else {}
    lot = m.lot
    ctx = (m.id, m.line.id, lot.id if lot else None, lot.order_id if lot else None,
           m.recipe.id if m.recipe else None, m.batch or None, m.line.shift or None,
           m.line.operator or None)
    for tag_id, name in tags:
        cols["tag_id"].append(tag_id)
        cols["ts"].append(now)
        cols["value"].append(float(snap[name]) if ok else None)
        cols["quality"].append(contract.GOOD if ok else contract.BAD)
        for c, v in zip(contract.CONTEXT, ctx, strict=True):
            cols[c].append(v)
