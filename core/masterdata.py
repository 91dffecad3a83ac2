"""Load the plant and its master data into the store, idempotently.

The plant structure (site, areas, lines, equipment, tag metadata) and the users come
from config.toml; products, recipes, routings, changeovers, materials, batches, stock,
shifts, maintenance windows and orders from data/master.toml. Order and window times
in master.toml are hours relative to the *plant epoch*: the hour at which the store
first received master data, kept in Meta so a reload never moves a date.

Rows are upserted by id. Fields that the running plant changes (order, lot and
operation status, stock on hand, lock-out state) are written only when a row is first
created, so reloading master data into a live store never undoes production.
master.toml is validated first: a bad reference is a ``MasterDataError`` naming the
file, the entry and the unknown id.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlmodel import Session, SQLModel, select

from core.clock import Clock, ensure_utc, parse_utc
from core.config import ConfigError, LoadedConfig
from core.config.loader import format_validation_error, key_lines, toml_error
from core.store.db import Store, guard
from core.store.locks import begin_write
from core.store.models import (
    Area,
    Changeover,
    Equipment,
    Line,
    Lot,
    MaintenanceWindow,
    Material,
    MaterialBatch,
    Meta,
    Operation,
    Product,
    ProductionOrder,
    QualityCharacteristic,
    Recipe,
    RecipeSetpoint,
    RoutingStep,
    Shift,
    Site,
    Stock,
    StockLocation,
    TagMeta,
    User,
)

EPOCH_KEY = "plant_epoch"
FINGERPRINT_KEY = "master_fingerprint"  # sources of the last load (see ensure_master_data)
ORDER_ID = re.compile(r"^[A-Z]+-(\d+)$")
HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"


class MasterDataError(ConfigError):
    """master.toml cannot be used; ``str()`` names the file and the entry."""


# ---------------------------------------------------------------- master.toml schema


class _Strict(BaseModel):
    # inf, nan and 1e999 are never master data
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


Text = Annotated[str, Field(min_length=1, pattern=r"\S")]  # an id or a name, not blank
Count = Annotated[int, Field(gt=0, le=1_000_000_000)]
Hours = Annotated[float, Field(ge=0, le=24 * 366 * 10)]


class CharacteristicSpec(_Strict):
    name: Text
    unit: str = ""
    target: float
    lsl: float
    usl: float

    @model_validator(mode="after")
    def _ordered(self) -> CharacteristicSpec:
        if not self.lsl < self.target < self.usl:
            raise ValueError(f"characteristic {self.name!r}: needs lsl < target < usl")
        return self


class ProductSpec(_Strict):
    id: Text
    name: Text
    line: Text
    lot_size: Count
    characteristic: CharacteristicSpec | None = None
    characteristics: list[CharacteristicSpec] = Field(default_factory=list)

    def all_characteristics(self) -> list[CharacteristicSpec]:
        return [*([self.characteristic] if self.characteristic else []), *self.characteristics]


class SetpointSpec(_Strict):
    equipment_type: Text
    name: Text
    value: float
    lo: float
    hi: float
    unit: str = ""
    # change of the product's key characteristic per unit of this setpoint, as the
    # process engineers measured it (DOE); lets the loop size a run-to-run correction
    effect: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> SetpointSpec:
        if not self.lo <= self.value <= self.hi:
            raise ValueError(f"setpoint {self.equipment_type}.{self.name}: needs lo <= value <= hi")
        return self


class RoutingSpec(_Strict):
    step: int = Field(ge=0)
    equipment: list[str] = Field(min_length=1)
    cycle_s: float = Field(gt=0, le=86_400)
    material: str | None = None
    qty_per_unit: float = Field(default=0.0, ge=0)


class RecipeSpec(_Strict):
    id: Text
    product: Text
    version: int = Field(default=1, ge=1)
    setpoints: list[SetpointSpec] = Field(default_factory=list)
    routing: list[RoutingSpec] = Field(min_length=1)


class ChangeoverSpec(_Strict):
    line: Text
    from_: str = Field(alias="from")
    to: Text
    minutes: float = Field(ge=0)


class MaterialSpec(_Strict):
    id: Text
    name: Text
    uom: str = "pcs"


class BatchSpec(_Strict):
    id: Text
    material: Text
    supplier: str = ""
    quantity: float = Field(ge=0, le=1e12)
    location: Text


class LocationSpec(_Strict):
    id: Text
    name: Text


class ShiftSpec(_Strict):
    id: Text
    name: Text
    start: str = Field(pattern=HHMM)
    end: str = Field(pattern=HHMM)
    crew: list[str] = Field(default_factory=list)


class WindowSpec(_Strict):
    line: Text
    equipment: str | None = None
    start_h: Hours
    duration_h: float = Field(gt=0, le=24 * 366)
    every_h: float | None = Field(default=None, gt=0)


class OrderSpec(_Strict):
    id: str = Field(pattern=ORDER_ID.pattern)
    product: Text
    quantity: Count
    release_h: Hours
    due_h: float = Field(gt=0, le=24 * 366 * 10)
    priority: int = Field(default=2, ge=1, le=9)
    customer: str = ""

    @model_validator(mode="after")
    def _due_after_release(self) -> OrderSpec:
        if self.due_h <= self.release_h:
            raise ValueError(f"order {self.id}: due_h must be after release_h")
        return self


class MasterSpec(_Strict):
    changeovers: list[ChangeoverSpec] = Field(default_factory=list)
    products: list[ProductSpec] = Field(min_length=1)
    recipes: list[RecipeSpec] = Field(default_factory=list)
    materials: list[MaterialSpec] = Field(default_factory=list)
    batches: list[BatchSpec] = Field(default_factory=list)
    locations: list[LocationSpec] = Field(default_factory=list)
    shifts: list[ShiftSpec] = Field(default_factory=list)
    maintenance_windows: list[WindowSpec] = Field(default_factory=list)
    orders: list[OrderSpec] = Field(default_factory=list)


def read_master(path: Path) -> tuple[MasterSpec, str]:
    """Parse and validate the shape of master.toml (references are checked separately)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MasterDataError(f"{path}: no such file (master_data in the config)") from None
    except OSError as e:
        raise MasterDataError(f"{path}: cannot be read ({e.strerror})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise MasterDataError(toml_error(path, text, e)) from None
    try:
        return MasterSpec.model_validate(raw), text
    except ValidationError as e:
        raise MasterDataError(format_validation_error(path, text, e)) from None


def check_references(spec: MasterSpec, loaded: LoadedConfig, path: Path,
                     text: str = "") -> None:
    """Every id master.toml mentions must exist; all problems are reported at once, each
    at the line of the entry that names it (``file:line: entry: problem``)."""
    cfg = loaded.config
    lines = {ln.id: ln for ln in cfg.lines}
    equipment = {eq.id: (ln.id, eq.type) for ln, eq in loaded.equipment()}
    users = {u.id for u in cfg.users}
    products = {p.id: p for p in spec.products}
    materials = {m.id for m in spec.materials}
    locations = {loc.id for loc in spec.locations}
    problems: list[str] = []

    lines_at = key_lines(text) if text else {}

    def bad(entry: str, msg: str) -> None:
        m = re.match(r"^(\w+)(?:\[(\d+)\])?", entry)
        loc: tuple = (m.group(1), int(m.group(2))) if m and m.group(2) else \
            (m.group(1),) if m else ()
        line = lines_at.get(loc) or lines_at.get(loc[:1])
        problems.append(f"{path}:{line}: {entry}: {msg}" if line else f"{path}: {entry}: {msg}")

    for kind, ids in (("products", [p.id for p in spec.products]),
                      ("recipes", [r.id for r in spec.recipes]),
                      ("materials", [m.id for m in spec.materials]),
                      ("batches", [b.id for b in spec.batches]),
                      ("locations", [loc.id for loc in spec.locations]),
                      ("shifts", [s.id for s in spec.shifts]),
                      ("orders", [o.id for o in spec.orders])):
        first: dict[str, int] = {}
        for n, i in enumerate(ids):
            if i in first:
                bad(f"{kind}[{n}] ({i})", f"id used twice (first at {kind}[{first[i]}])")
            first.setdefault(i, n)
    for i, p in enumerate(spec.products):
        if p.line not in lines:
            bad(f"products[{i}] ({p.id})", f"unknown line {p.line!r} "
                f"(config lines: {', '.join(lines)})")
    with_recipe: set[str] = set()
    for i, r in enumerate(spec.recipes):
        where = f"recipes[{i}] ({r.id})"
        prod = products.get(r.product)
        if prod is None:
            bad(where, f"unknown product {r.product!r}")
            continue
        with_recipe.add(r.product)
        line_types = {t for (ln, t) in equipment.values() if ln == prod.line}
        for sp in r.setpoints:
            if sp.equipment_type not in line_types:
                bad(where, f"setpoint {sp.name!r} for equipment type {sp.equipment_type!r}, "
                    f"which line {prod.line} does not have")
        steps = [st.step for st in r.routing]
        if len(set(steps)) != len(steps):
            bad(where, "routing step numbers must be unique")
        for st in r.routing:
            for eq in st.equipment:
                if eq not in equipment:
                    bad(where, f"routing step {st.step}: unknown equipment {eq!r}")
                elif equipment[eq][0] != prod.line:
                    bad(where, f"routing step {st.step}: equipment {eq!r} is not on line "
                        f"{prod.line}")
            if st.material is not None and st.material not in materials:
                bad(where, f"routing step {st.step}: unknown material {st.material!r}")
    for i, c in enumerate(spec.changeovers):
        where = f"changeovers[{i}] ({c.line}: {c.from_} -> {c.to})"
        if c.line not in lines:
            bad(where, f"unknown line {c.line!r}")
        for pid in (c.from_, c.to):
            if pid not in products:
                bad(where, f"unknown product {pid!r}")
    for i, b in enumerate(spec.batches):
        if b.material not in materials:
            bad(f"batches[{i}] ({b.id})", f"unknown material {b.material!r}")
        if b.location not in locations:
            bad(f"batches[{i}] ({b.id})", f"unknown location {b.location!r}")
    for i, s in enumerate(spec.shifts):
        for u in s.crew:
            if u not in users:
                bad(f"shifts[{i}] ({s.id})", f"unknown user {u!r} in crew "
                    "(users are defined in the config)")
    for i, w in enumerate(spec.maintenance_windows):
        if w.line not in lines:
            bad(f"maintenance_windows[{i}]", f"unknown line {w.line!r}")
        if w.equipment is not None and w.equipment not in equipment:
            bad(f"maintenance_windows[{i}]", f"unknown equipment {w.equipment!r}")
    for i, o in enumerate(spec.orders):
        if o.product not in products:
            bad(f"orders[{i}] ({o.id})", f"unknown product {o.product!r}")
        elif o.product not in with_recipe:
            bad(f"orders[{i}] ({o.id})", f"product {o.product!r} has no recipe")
    if problems:
        more = f"\n... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise MasterDataError("\n".join(problems[:10]) + more)


# ---------------------------------------------------------------- derived rows


def lot_id(order_id: str, k: int) -> str:
    """Lot k (1-based) of an order: PO-0007 lot 2 -> L-00702."""
    m = ORDER_ID.match(order_id)
    if not m:
        raise MasterDataError(f"order id {order_id!r} has no number (expected e.g. PO-0007)")
    return f"L-{int(m.group(1)):03d}{k:02d}"


def lot_quantities(quantity: int, lot_size: int) -> list[int]:
    """Full lots of lot_size, the remainder in the last one."""
    n = math.ceil(quantity / lot_size)
    return [min(lot_size, quantity - k * lot_size) for k in range(n)]


def plant_epoch(store: Store) -> datetime | None:
    v = store.get_meta(EPOCH_KEY)
    return parse_utc(v) if v else None


def _epoch(session: Session, clock: Clock) -> datetime:
    row = session.get(Meta, EPOCH_KEY)
    if row is not None:
        return parse_utc(row.value)
    epoch = ensure_utc(clock.now()).replace(minute=0, second=0, microsecond=0)
    session.add(Meta(key=EPOCH_KEY, value=epoch.isoformat()))
    return epoch


def _hours(epoch: datetime, h: float) -> datetime:
    # whole seconds: the same file gives the same instants on every platform
    return epoch + timedelta(seconds=round(h * 3600))


RowGroup = tuple[type[SQLModel], list[dict[str, Any]], frozenset[str]]


def build_rows(spec: MasterSpec, loaded: LoadedConfig, epoch: datetime) -> list[RowGroup]:
    """Every master row as (model, rows, runtime-owned fields), parents before children."""
    cfg = loaded.config
    products = {p.id: p for p in spec.products}
    recipe_of: dict[str, RecipeSpec] = {}
    for r in spec.recipes:  # the highest version is the one orders run with
        if r.product not in recipe_of or r.version > recipe_of[r.product].version:
            recipe_of[r.product] = r
    none: frozenset[str] = frozenset()

    site = [{"id": cfg.site.id, "name": cfg.site.name, "timezone": cfg.site.timezone}]
    areas = [{"id": a.id, "site_id": cfg.site.id, "name": a.name} for a in cfg.areas]
    lines = [{"id": ln.id, "area_id": ln.area, "name": ln.name, "driver": ln.driver,
              "position": i} for i, ln in enumerate(cfg.lines)]
    equipment = [{"id": eq.id, "line_id": ln.id, "name": eq.name, "type": eq.type,
                  "driver": eq.driver or ln.driver, "ideal_cycle_s": eq.ideal_cycle_s,
                  "position": i}
                 for ln in cfg.lines for i, eq in enumerate(ln.equipment)]
    tags = []
    for t in loaded.tags:
        lim = t.spec.limits
        tags.append({
            "id": t.id, "name": t.name, "equipment_id": t.equipment_id, "line_id": t.line_id,
            "driver": t.driver_id, "address": t.spec.address, "kind": t.spec.kind,
            "data_type": t.spec.data_type, "unit": t.spec.unit,
            "description": t.spec.description, "writable": t.spec.writable,
            "is_key": t.spec.key,
            "lolo": lim.lolo if lim else None, "lo": lim.lo if lim else None,
            "hi": lim.hi if lim else None, "hihi": lim.hihi if lim else None,
        })
    users = [{"id": u.id, "name": u.name, "roles": ",".join(u.roles),
              "failed_attempts": 0, "locked": False} for u in cfg.users]
    materials = [{"id": m.id, "name": m.name, "uom": m.uom} for m in spec.materials]
    locations = [{"id": loc.id, "name": loc.name} for loc in spec.locations]
    batches = [{"id": b.id, "material_id": b.material, "supplier": b.supplier,
                "quantity": b.quantity, "status": "released"} for b in spec.batches]
    stock = [{"id": f"{b.location}:{b.id}", "location_id": b.location,
              "material_id": b.material, "batch_id": b.id, "quantity": b.quantity}
             for b in spec.batches]
    prods = [{"id": p.id, "name": p.name, "line_id": p.line, "lot_size": p.lot_size}
             for p in spec.products]
    chars = [{"id": f"{p.id}.{c.name}", "product_id": p.id, "name": c.name, "unit": c.unit,
              "target": c.target, "lsl": c.lsl, "usl": c.usl}
             for p in spec.products for c in p.all_characteristics()]
    recipes = [{"id": r.id, "product_id": r.product, "version": r.version}
               for r in spec.recipes]
    setpoints = [{"id": f"{r.id}.{sp.equipment_type}.{sp.name}", "recipe_id": r.id,
                  "equipment_type": sp.equipment_type, "name": sp.name, "value": sp.value,
                  "lo": sp.lo, "hi": sp.hi, "unit": sp.unit}
                 for r in spec.recipes for sp in r.setpoints]
    routing = [{"id": f"{r.id}.{st.step}", "recipe_id": r.id, "product_id": r.product,
                "step": st.step, "equipment": ",".join(st.equipment), "cycle_s": st.cycle_s,
                "material_id": st.material, "qty_per_unit": st.qty_per_unit}
               for r in spec.recipes for st in r.routing]
    changeovers = [{"id": f"{c.line}:{c.from_}->{c.to}", "line_id": c.line,
                    "from_product_id": c.from_, "to_product_id": c.to, "minutes": c.minutes}
                   for c in spec.changeovers]
    shifts = [{"id": s.id, "name": s.name, "start": s.start, "end": s.end,
               "crew": ",".join(s.crew)} for s in spec.shifts]
    horizon_h = max((o.due_h for o in spec.orders), default=24.0) + 24.0
    windows = []
    for w in spec.maintenance_windows:
        n, t = 1, w.start_h
        while True:
            key = w.equipment or w.line
            windows.append({"id": f"MW-{key}-{n:02d}", "line_id": w.line,
                            "equipment_id": w.equipment, "start": _hours(epoch, t),
                            "end": _hours(epoch, t + w.duration_h)})
            if not w.every_h:
                break
            n, t = n + 1, t + w.every_h
            if t >= horizon_h:
                break
    orders, ops, lots = [], [], []
    for o in spec.orders:
        prod = products[o.product]
        rec = recipe_of[o.product]
        orders.append({"id": o.id, "product_id": o.product, "recipe_id": rec.id,
                       "line_id": prod.line, "quantity": o.quantity,
                       "release_at": _hours(epoch, o.release_h),
                       "due_at": _hours(epoch, o.due_h), "priority": o.priority,
                       "customer": o.customer, "status": "planned"})
        for st in rec.routing:
            ops.append({"id": f"{o.id}-{st.step}", "order_id": o.id,
                        "routing_step_id": f"{rec.id}.{st.step}", "step": st.step,
                        "equipment_id": st.equipment[0] if len(st.equipment) == 1 else None,
                        "status": "planned"})
        for k, q in enumerate(lot_quantities(o.quantity, prod.lot_size), 1):
            lots.append({"id": lot_id(o.id, k), "order_id": o.id, "product_id": o.product,
                         "quantity": q, "status": "planned", "equipment_id": None,
                         "created_at": _hours(epoch, o.release_h)})

    return [
        (Site, site, none), (Area, areas, none), (Line, lines, none),
        (Equipment, equipment, none), (TagMeta, tags, none),
        (User, users, frozenset({"failed_attempts", "locked"})),
        (Material, materials, none), (StockLocation, locations, none),
        (MaterialBatch, batches, frozenset({"status"})),
        (Stock, stock, frozenset({"quantity"})),
        (Product, prods, none), (QualityCharacteristic, chars, none),
        (Recipe, recipes, none), (RecipeSetpoint, setpoints, none),
        (RoutingStep, routing, none), (Changeover, changeovers, none),
        (Shift, shifts, none), (MaintenanceWindow, windows, none),
        (ProductionOrder, orders, frozenset({"status"})),
        (Operation, ops, frozenset({"status", "equipment_id"})),
        (Lot, lots, frozenset({"status", "equipment_id", "created_at"})),
    ]


# ---------------------------------------------------------------- loading


@dataclass
class LoadReport:
    epoch: datetime
    inserted: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(self.inserted.values()) or any(self.updated.values())


def _upsert(session: Session, model: type[SQLModel], rows: Iterable[dict[str, Any]],
            runtime: frozenset[str]) -> tuple[int, int]:
    existing = {obj.id: obj for obj in session.exec(select(model))}  # type: ignore[attr-defined]
    ins = upd = 0
    for row in rows:
        obj = existing.get(row["id"])
        if obj is None:
            session.add(model(**row))
            ins += 1
            continue
        changed = False
        for k, v in row.items():
            if k in runtime:
                continue
            cur = getattr(obj, k)
            if isinstance(cur, datetime) and isinstance(v, datetime):
                same = ensure_utc(cur) == ensure_utc(v)
            else:
                same = cur == v
            if not same:
                setattr(obj, k, v)
                changed = True
        upd += changed
    session.flush()
    return ins, upd


EFFECT_PREFIX = "r2r.effect."  # + recipe setpoint id: the engineers' sensitivity


def load_master_data(store: Store, loaded_config: LoadedConfig, clock: Clock) -> LoadReport:
    """Validate master.toml against the config, then upsert everything in one transaction."""
    path = loaded_config.master_data_path
    spec, text = read_master(path)
    check_references(spec, loaded_config, path, text)
    with guard(store), store.session() as session:
        conn = session.connection()
        # write lock first: two processes seeding a new store take turns, and the
        # second finds the rows of the first instead of colliding on their ids
        begin_write(conn)
        epoch = _epoch(session, clock)
        report = LoadReport(epoch=epoch)
        for model, rows, runtime in build_rows(spec, loaded_config, epoch):
            ins, upd = _upsert(session, model, rows, runtime)
            name = model.__tablename__  # type: ignore[attr-defined]
            report.inserted[name] = ins
            report.updated[name] = upd
        for r in spec.recipes:
            for sp in r.setpoints:
                if sp.effect is not None:
                    session.merge(Meta(key=f"{EFFECT_PREFIX}{r.id}.{sp.equipment_type}.{sp.name}",
                                       value=repr(float(sp.effect))))
        session.merge(Meta(key=FINGERPRINT_KEY, value=fingerprint(loaded_config, text)))
        session.commit()
    return report


def fingerprint(loaded_config: LoadedConfig, master_text: str) -> str:
    """What the master rows are built from: the plant part of the config and master.toml."""
    plant = loaded_config.config.model_dump_json(
        include={"site", "areas", "lines", "templates", "plant_tags", "users"})
    h = hashlib.sha256(plant.encode())
    h.update(b"\x00")
    h.update(master_text.encode())
    return h.hexdigest()


def ensure_master_data(store: Store, loaded_config: LoadedConfig,
                       clock: Clock) -> LoadReport | None:
    """Load master data when the store is empty or its sources changed; else do nothing.

    A fresh clone gets its plant on first use; an edited master.toml or plant config is
    applied at the next start (as an upsert: production state is kept).
    """
    path = loaded_config.master_data_path
    _, text = read_master(path)
    if (store.count(Line) and store.count(ProductionOrder)
            and store.get_meta(FINGERPRINT_KEY) == fingerprint(loaded_config, text)):
        return None
    return load_master_data(store, loaded_config, clock)
