"""Master data the twin runs on (products, recipes, routings, orders, batches, shifts).

Read straight from data/master.toml with tomllib: the twin is a separate process and
must not depend on the console's store, only on the same source file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path


class MasterDataError(Exception):
    """master.toml is missing or inconsistent; str() is the message for the user."""


@dataclass(frozen=True)
class Characteristic:
    name: str
    unit: str
    target: float
    lsl: float
    usl: float

    @property
    def half_tol(self) -> float:
        return (self.usl - self.lsl) / 2.0


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    line: str
    lot_size: int
    characteristic: Characteristic


@dataclass(frozen=True)
class SetpointSpec:
    equipment_type: str
    name: str
    value: float
    lo: float
    hi: float
    unit: str = ""


@dataclass(frozen=True)
class RoutingStep:
    step: int
    equipment: tuple[str, ...]
    cycle_s: float
    material: str | None = None
    qty_per_unit: float = 0.0


@dataclass(frozen=True)
class Recipe:
    id: str
    product: str
    version: int
    setpoints: tuple[SetpointSpec, ...]
    routing: tuple[RoutingStep, ...]

    def setpoints_for(self, equipment_type: str) -> dict[str, SetpointSpec]:
        return {s.name: s for s in self.setpoints if s.equipment_type == equipment_type}


@dataclass(frozen=True)
class Batch:
    id: str
    material: str
    supplier: str
    quantity: float
    location: str


@dataclass(frozen=True)
class Shift:
    id: str
    name: str
    start_min: int  # minutes after midnight UTC
    end_min: int
    crew: tuple[str, ...]

    def covers(self, minute_of_day: int) -> bool:
        if self.start_min <= self.end_min:
            return self.start_min <= minute_of_day < self.end_min
        return minute_of_day >= self.start_min or minute_of_day < self.end_min


@dataclass(frozen=True)
class MaintenanceWindow:
    line: str
    start_h: float
    duration_h: float
    every_h: float


@dataclass(frozen=True)
class Order:
    id: str
    product: str
    quantity: int
    release_h: float
    due_h: float
    priority: int


@dataclass
class Master:
    products: dict[str, Product] = field(default_factory=dict)
    recipes: dict[str, Recipe] = field(default_factory=dict)
    batches: list[Batch] = field(default_factory=list)
    shifts: list[Shift] = field(default_factory=list)
    windows: list[MaintenanceWindow] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    changeovers: dict[tuple[str, str, str], float] = field(default_factory=dict)  # minutes

    def recipe_for(self, product_id: str) -> Recipe:
        """The highest version of the product's recipe."""
        found = [r for r in self.recipes.values() if r.product == product_id]
        if not found:
            raise MasterDataError(f"product {product_id!r} has no recipe")
        return max(found, key=lambda r: r.version)


def _hhmm(text: str) -> int:
    h, m = text.split(":")
    return int(h) * 60 + int(m)


def load_master(path: str | Path) -> Master:
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MasterDataError(f"{p}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise MasterDataError(f"{p}: TOML syntax error: {e}") from None
    try:
        return _build(raw)
    except (KeyError, TypeError, ValueError) as e:
        raise MasterDataError(f"{p}: bad master data ({type(e).__name__}: {e})") from None


def _build(raw: dict) -> Master:
    m = Master()
    for p in raw.get("products", []):
        c = p["characteristic"]
        ch = Characteristic(c["name"], c.get("unit", ""), float(c["target"]), float(c["lsl"]),
                            float(c["usl"]))
        m.products[p["id"]] = Product(p["id"], p.get("name", p["id"]), p["line"],
                                      int(p["lot_size"]), ch)
    for r in raw.get("recipes", []):
        sps = tuple(
            SetpointSpec(s["equipment_type"], s["name"], float(s["value"]), float(s["lo"]),
                         float(s["hi"]), s.get("unit", ""))
            for s in r.get("setpoints", [])
        )
        steps = tuple(
            RoutingStep(int(s["step"]), tuple(s["equipment"]), float(s["cycle_s"]),
                        s.get("material"), float(s.get("qty_per_unit", 0.0)))
            for s in sorted(r.get("routing", []), key=lambda s: s["step"])
        )
        if r["product"] not in m.products:
            raise ValueError(f"recipe {r['id']} names unknown product {r['product']}")
        m.recipes[r["id"]] = Recipe(r["id"], r["product"], int(r.get("version", 1)), sps, steps)
    for b in raw.get("batches", []):
        m.batches.append(Batch(b["id"], b["material"], b.get("supplier", ""),
                               float(b["quantity"]), b["location"]))
    for s in raw.get("shifts", []):
        m.shifts.append(Shift(s["id"], s.get("name", s["id"]), _hhmm(s["start"]),
                              _hhmm(s["end"]), tuple(s.get("crew", []))))
    for w in raw.get("maintenance_windows", []):
        m.windows.append(MaintenanceWindow(w["line"], float(w["start_h"]),
                                           float(w["duration_h"]), float(w["every_h"])))
    for o in raw.get("orders", []):
        if o["product"] not in m.products:
            raise ValueError(f"order {o['id']} names unknown product {o['product']}")
        m.orders.append(Order(o["id"], o["product"], int(o["quantity"]), float(o["release_h"]),
                              float(o["due_h"]), int(o.get("priority", 2))))
    for c in raw.get("changeovers", []):
        m.changeovers[(c["line"], c["from"], c["to"])] = float(c["minutes"])
    return m
