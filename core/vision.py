"""Vision inspection results: what a camera station decided about each unit, in context.

loopline is not the vision system: a station (Cognex, Keyence, an in-house model)
classifies images and publishes per unit a result, defect classes with confidence and
an image reference. A ``kind = "vision"`` tag maps that output (config only); the
driver decodes it into one text sample, a *reading* (``encode_reading``), and
``VisionTracker`` (ingest) turns readings into ``Inspection`` rows:

- a new unit is a new unit id or counter value; the same reading polled again is not
  a unit, counter 0 / an empty id is "nothing inspected yet", a counter that goes back
  is a station restart (its next units count, none twice). A station seen for the
  first time showing a unit is a baseline (that unit was inspected before loopline
  looked, in a context it cannot know), as ``core.counters`` does for a new counter.
  The last unit of every station is saved with the rows, so a loopline restart does
  not count it again;
- the row carries the context of the tag's machine when the result arrived (machine,
  line, order, operation, lot, recipe, batch, shift, operator: the contextualizer's);
- a reject moves a unit of that lot from good to scrap (``production_count`` row
  good −1 / scrap +1, and the operation's quantities), the way the machine's own
  scrap counter books it: the station inspects what the machine counted good.

Readers: ``inspections`` (one row per inspection and defect) and ``defect_counts``
(Pareto by class, or inspected/rejected by line, lot or shift).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import polars as pl
from sqlalchemy import and_, select, text

from core.config.loader import ResolvedTag
from core.production import PRODUCTION_COUNT, ensure_schema
from core.samples import ContextSample, Quality
from core.store.chunks import from_us, to_us
from core.store.db import Store, guard
from core.store.models import InspectionDefectRow, InspectionRow

INSPECTION = InspectionRow.__table__  # type: ignore[attr-defined]
DEFECT = InspectionDefectRow.__table__  # type: ignore[attr-defined]
LAST_UNITS_KEY = "vision.last_units"
COUNTER_MODULUS = 65536  # the Modbus unit counter is a uint16

COLUMNS = ["ts", "equipment_id", "line_id", "lot_id", "order_id", "shift_id", "operator_id",
           "recipe_id", "batch_id", "unit_id", "passed", "defect_class", "confidence",
           "image_ref", "inspection_id", "station_tag"]
SCHEMA: dict[str, Any] = {
    "ts": pl.Datetime("us", "UTC"), **{c: pl.String() for c in COLUMNS[1:10]},
    "passed": pl.Boolean(), "defect_class": pl.String(), "confidence": pl.Float64(),
    "image_ref": pl.String(), "inspection_id": pl.Int64(), "station_tag": pl.String()}
GROUPS: dict[str, str] = {"class": "defect_class", "line": "line_id", "lot": "lot_id",
                          "shift": "shift_id"}


@dataclass(frozen=True)
class Defect:
    defect_class: str
    confidence: float


@dataclass(frozen=True)
class Inspection:
    """One inspected unit (``ts`` UTC); the context fields are filled at ingest."""

    ts: datetime
    equipment_id: str
    station_tag: str
    unit_id: str | None
    passed: bool
    defects: tuple[Defect, ...]
    image_ref: str | None
    line_id: str | None = None
    order_id: str | None = None
    operation_id: str | None = None
    lot_id: str | None = None
    recipe_id: str | None = None
    batch_id: str | None = None
    shift_id: str | None = None
    operator_id: str | None = None


@dataclass(frozen=True)
class Reading:
    """A station's current output as a driver decoded it (not yet known to be a new unit)."""

    unit_id: str | None
    counter: int | None
    passed: bool
    defects: tuple[Defect, ...] = ()
    image_ref: str | None = None

    @property
    def key(self) -> str | None:
        """What identifies the unit; None while the station has inspected nothing."""
        if self.counter is not None:
            return None if self.counter == 0 else f"#{self.counter}"
        return self.unit_id or None


def encode_reading(r: Reading) -> str:
    """The text sample a driver emits for a vision tag (compact, stable key order)."""
    return json.dumps({"unit": r.unit_id, "n": r.counter, "pass": r.passed,
                       "defects": [[d.defect_class, round(d.confidence, 4)] for d in r.defects],
                       "image": r.image_ref}, separators=(",", ":"))


def decode_reading(value: str) -> Reading:
    """``encode_reading``'s text back; ``ValueError`` for anything else."""
    try:
        d = json.loads(value)
        return Reading(d["unit"], d["n"], bool(d["pass"]),
                       tuple(Defect(str(c), float(p)) for c, p in d["defects"]), d["image"])
    except (TypeError, KeyError, ValueError) as e:
        raise ValueError(f"not a vision reading: {e}") from None


# ---------------------------------------------------------------- ingest


@dataclass
class VisionStats:
    inspections: int = 0
    rejects: int = 0
    missed: int = 0  # units the counter skipped between two readings (polled too slowly)
    restarts: int = 0  # the station's counter went back
    undecodable: int = 0
    baselines: int = 0  # stations first seen mid-run: their current unit is not counted
    repeats: int = 0  # polled readings equal to the one before, kept out of history


@dataclass
class _Pending:
    insp: list[Inspection] = field(default_factory=list)
    counts: dict[tuple[Any, ...], int] = field(default_factory=dict)  # key -> rejects


class VisionTracker:
    """Readings of vision tags → inspections, saved with the rejects they book as scrap."""

    def __init__(self, tags: Iterable[ResolvedTag]) -> None:
        self.tags = {t.id: t for t in tags if t.spec.kind == "vision" and t.equipment_id}
        self.last: dict[str, str] = {}  # tag -> key of the last unit counted
        self.stats = VisionStats()
        self._p = _Pending()
        self._lock = threading.Lock()
        self._dirty = False
        self._shown: dict[str, str] = {}  # tag -> quality + the last reading history kept

    def changed_only(self, samples: list[ContextSample]) -> list[ContextSample]:
        """The batch without vision readings equal to the one before (a polled station
        repeats its last result every poll; history keeps each result once)."""
        if not self.tags:
            return samples
        out = []
        for s in samples:
            if s.tag_id in self.tags:
                if s.quality != Quality.BAD and isinstance(s.value, str):
                    shown = f"{int(s.quality)}{s.value}"
                    if self._shown.get(s.tag_id) == shown:
                        self.stats.repeats += 1
                        continue
                    self._shown[s.tag_id] = shown
                else:
                    self._shown.pop(s.tag_id, None)
            out.append(s)
        return out

    def load(self, store: Store) -> None:
        """The last unit of every station, so a restart does not count it again."""
        saved = store.get_meta(LAST_UNITS_KEY)
        if saved:
            self.last.update(json.loads(saved))

    @property
    def pending(self) -> int:
        return len(self._p.insp)

    def process(self, samples: Iterable[ContextSample]) -> None:
        """Fold a stamped batch into pending inspections (no I/O)."""
        if not self.tags:
            return
        with self._lock:
            for s in samples:
                t = self.tags.get(s.tag_id)
                if t is None or s.quality == Quality.BAD or not isinstance(s.value, str):
                    continue
                try:
                    r = decode_reading(s.value)
                except ValueError:
                    self.stats.undecodable += 1
                    continue
                self._reading(t, r, s)

    def _reading(self, t: ResolvedTag, r: Reading, s: ContextSample) -> None:
        key = r.key
        prev = self.last.get(t.id)
        if key is None:  # nothing inspected yet: the next unit is the first
            if prev is None:
                self.last[t.id], self._dirty = "", True
            return
        if key == prev:
            return
        if prev is None:
            # a station never seen before shows a unit inspected before we looked (its
            # context unknown): a baseline, as for a counter seen the first time
            self.last[t.id], self._dirty = key, True
            self.stats.baselines += 1
            return
        if r.counter is not None and prev.startswith("#"):
            step = (r.counter - int(prev[1:])) % COUNTER_MODULUS
            if r.counter < int(prev[1:]) and step > 1000:
                self.stats.restarts += 1  # went back: a restart, not a wrap
            elif step > 1:
                self.stats.missed += step - 1
        self.last[t.id] = key
        self._dirty = True
        c = s.ctx
        assert t.equipment_id is not None
        unit = r.unit_id if r.unit_id else (str(r.counter) if r.counter is not None else None)
        if unit is not None and r.counter is not None and t.spec.id_format:
            with contextlib.suppress(ValueError, IndexError, KeyError):
                unit = t.spec.id_format.format(r.counter)
        insp = Inspection(s.source_ts, t.equipment_id, t.id, unit, r.passed, r.defects,
                          r.image_ref, c.line_id, c.order_id, c.operation_id, c.lot_id,
                          c.recipe_id, c.batch_id, c.shift_id, c.operator_id)
        self._p.insp.append(insp)
        self.stats.inspections += 1
        if not r.passed:
            self.stats.rejects += 1
            minute = s.source_ts.replace(second=0, microsecond=0)
            k = (t.equipment_id, c.line_id, c.lot_id, c.order_id, c.operation_id, c.shift_id,
                 minute)
            self._p.counts[k] = self._p.counts.get(k, 0) + 1

    def flush(self, store: Store) -> int:
        """Write pending inspections, their defects and scrap bookings in one transaction."""
        with self._lock:
            p, self._p = self._p, _Pending()
            dirty, self._dirty = self._dirty, False
            last = json.dumps(self.last) if dirty else None
        if not p.insp and last is None:
            return 0
        try:
            with store.begin() as conn:
                ensure_schema(conn)
                write_inspections(conn, p.insp)
                if p.counts:
                    rows = [{"equipment_id": k[0], "line_id": k[1], "lot_id": k[2],
                             "order_id": k[3], "operation_id": k[4], "shift_id": k[5],
                             "ts": k[6], "good": -n, "scrap": n} for k, n in p.counts.items()]
                    conn.execute(PRODUCTION_COUNT.insert(), rows)
                    ops = [{"op": r["operation_id"], "n": r["scrap"]} for r in rows
                           if r["operation_id"]]
                    if ops:
                        conn.execute(text("UPDATE operation SET qty_good = qty_good - :n,"
                                          " qty_scrap = qty_scrap + :n WHERE id = :op"), ops)
                if last is not None:
                    conn.execute(text("INSERT INTO meta (key, value) VALUES (:k, :v) "
                                      "ON CONFLICT(key) DO UPDATE SET value = excluded.value"),
                                 {"k": LAST_UNITS_KEY, "v": last})
        except Exception:
            with self._lock:  # kept for the next flush: inspections are not dropped
                self._p.insp = p.insp + self._p.insp
                for k, n in p.counts.items():
                    self._p.counts[k] = self._p.counts.get(k, 0) + n
                self._dirty = self._dirty or dirty
            raise
        return len(p.insp)


def write_inspections(conn: Any, items: Iterable[Inspection]) -> int:
    """Insert inspections and their defects on an open connection (portable SQL)."""
    n = 0
    for i in items:
        res = conn.execute(INSPECTION.insert().values(
            ts=to_us(i.ts), equipment_id=i.equipment_id, station_tag=i.station_tag,
            unit_id=i.unit_id, passed=i.passed, image_ref=i.image_ref, line_id=i.line_id,
            order_id=i.order_id, operation_id=i.operation_id, lot_id=i.lot_id,
            recipe_id=i.recipe_id, batch_id=i.batch_id, shift_id=i.shift_id,
            operator_id=i.operator_id))
        iid = res.inserted_primary_key[0]
        if i.defects:
            conn.execute(DEFECT.insert(), [{"inspection_id": iid, "defect_class": d.defect_class,
                                            "confidence": d.confidence} for d in i.defects])
        n += 1
    return n


# ---------------------------------------------------------------- readers


def inspections(store: Store, *, since: datetime | None = None, until: datetime | None = None,
                equipment_id: str | None = None, line_id: str | None = None) -> pl.DataFrame:
    """One row per (inspection, defect) in [since, until); a unit without defects has one
    row with ``defect_class`` null. Sorted by ts, inspection, defect."""
    i, d = INSPECTION, DEFECT
    conds = []
    if since is not None:
        conds.append(i.c.ts >= to_us(since))
    if until is not None:
        conds.append(i.c.ts < to_us(until))
    if equipment_id is not None:
        conds.append(i.c.equipment_id == equipment_id)
    if line_id is not None:
        conds.append(i.c.line_id == line_id)
    q = (select(i.c.ts, i.c.equipment_id, i.c.line_id, i.c.lot_id, i.c.order_id, i.c.shift_id,
                i.c.operator_id, i.c.recipe_id, i.c.batch_id, i.c.unit_id, i.c.passed,
                d.c.defect_class, d.c.confidence, i.c.image_ref, i.c.id, i.c.station_tag)
         .select_from(i.outerjoin(d, d.c.inspection_id == i.c.id))
         .order_by(i.c.ts, i.c.id, d.c.id))
    if conds:
        q = q.where(and_(*conds))
    with guard(store), store.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(q).all()]
    rows = [(from_us(int(r[0])), *r[1:10], bool(r[10]), *r[11:]) for r in rows]
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def defect_counts(store: Store, by: Literal["class", "line", "lot", "shift"],
                  since: datetime | None = None, until: datetime | None = None, *,
                  line_id: str | None = None, equipment_id: str | None = None
                  ) -> pl.DataFrame:
    """Defects grouped for a Pareto or a table.

    ``by="class"``: defect_class, defects (defect rows), units (inspected units with the
    class), share and cumulative_share of all defects; most frequent first.
    ``by="line"|"lot"|"shift"``: line_id|lot_id|shift_id, inspected, rejected,
    reject_rate, defects, top_class; most rejects first.
    """
    if by not in GROUPS:
        raise ValueError(f"defect counts by {by!r}: use one of {', '.join(GROUPS)}")
    df = inspections(store, since=since, until=until, equipment_id=equipment_id,
                     line_id=line_id)
    col = GROUPS[by]
    if by == "class":
        dd = df.filter(pl.col("defect_class").is_not_null())
        total = max(dd.height, 1)
        return (dd.group_by("defect_class")
                .agg(pl.len().cast(pl.Int64()).alias("defects"),
                     pl.col("inspection_id").n_unique().cast(pl.Int64()).alias("units"))
                .sort(["defects", "defect_class"], descending=[True, False])
                .with_columns((pl.col("defects") / total).alias("share"))
                .with_columns(pl.col("share").cum_sum().alias("cumulative_share")))
    units = df.unique("inspection_id", keep="first", maintain_order=True)
    per = (units.group_by(col)
           .agg(pl.len().cast(pl.Int64()).alias("inspected"),
                (~pl.col("passed")).sum().cast(pl.Int64()).alias("rejected")))
    defects = (df.filter(pl.col("defect_class").is_not_null())
               .group_by(col, "defect_class").agg(pl.len().alias("n"))
               .sort(["n", "defect_class"], descending=[True, False]))
    top = defects.group_by(col, maintain_order=True).agg(
        pl.col("n").sum().cast(pl.Int64()).alias("defects"),
        pl.col("defect_class").first().alias("top_class"))
    return (per.join(top, on=col, how="left", nulls_equal=True)
            .with_columns(pl.col("defects").fill_null(0),
                          (pl.col("rejected") / pl.col("inspected")).alias("reject_rate"))
            .select(col, "inspected", "rejected", "reject_rate", "defects", "top_class")
            .sort(["rejected", col], descending=[True, False], nulls_last=True))
