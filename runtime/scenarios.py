"""Evaluation scenarios: the same plant under a different order book and reliability.

A scenario is a TOML file in ``data/scenarios/`` (``loopline eval --scenario NAME``).
It changes only what the plant is asked to do and how its machines break — the master
data (orders, batches, changeover minutes) and the twin's ``[reliability]`` table —
never the loop: the config, detectors, rules and autonomy are the same in every
scenario, and nothing the console reads names the scenario.

``[orders] mode = "repeat"`` repeats the master data's order book every ``period_h``
(the default plant). ``mode = "generate"`` writes an order book whose work, changeovers
included, fills ``utilisation`` of each line's bottleneck over the horizon (orders
drawn from the eval seed, so each seed is another week of the same plant).
"""

from __future__ import annotations

import math
import random
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CUSTOMERS = ("Vantor Pumps", "Hexa Motors", "Brightline Appliances", "Orbis Rail")


class ScenarioError(Exception):
    """The scenario file is missing or unusable; str() is the message for the user."""


@dataclass
class Scenario:
    name: str
    path: Path
    description: str = ""
    faults_per_day: float | None = None
    orders: dict[str, Any] = field(default_factory=dict)
    changeovers: list[dict[str, Any]] = field(default_factory=list)
    has_reliability: bool = False


KEYS = {"name", "description", "faults_per_day", "orders", "changeovers", "reliability",
        "sources"}
ORDER_KEYS = {"mode", "period_h", "utilisation", "lots_per_order", "due_allowance",
              "min_lead_h", "batch_size"}


def scenario_dir(base: Path) -> Path:
    return base / "data" / "scenarios"


def available(base: Path) -> list[str]:
    return sorted(p.stem for p in scenario_dir(base).glob("*.toml"))


def find_scenario(name_or_path: str, base: Path) -> Path:
    """A name in data/scenarios/ (next to the config) or a path to a .toml file."""
    p = Path(name_or_path)
    if p.suffix == ".toml" and p.is_file():
        return p
    cand = scenario_dir(base) / f"{name_or_path}.toml"
    if cand.is_file():
        return cand
    names = ", ".join(available(base)) or "none"
    raise ScenarioError(f"no scenario {name_or_path!r} (in {scenario_dir(base)}: {names})")


def load_scenario(path: Path) -> Scenario:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{path}: TOML syntax error: {e}") from None
    extra = set(raw) - KEYS
    if extra:
        raise ScenarioError(f"{path}: unknown key(s) {', '.join(sorted(extra))}")
    orders = raw.get("orders", {"mode": "repeat"})
    if set(orders) - ORDER_KEYS or orders.get("mode") not in ("repeat", "generate"):
        raise ScenarioError(f"{path}: [orders] needs mode = \"repeat\" or \"generate\" "
                            f"and only the keys {', '.join(sorted(ORDER_KEYS))}")
    util = float(orders.get("utilisation", 0.9))
    if not 0.05 <= util <= 1.2:
        raise ScenarioError(f"{path}: [orders] utilisation {util:g} is outside 0.05..1.2")
    # the twin's own parser (standard library only; the twin reads the table again)
    from sim.reliability import ReliabilityError, parse_reliability

    try:
        parse_reliability(raw.get("reliability", {}))
    except ReliabilityError as e:
        raise ScenarioError(f"{path}: {e}") from None
    for c in raw.get("changeovers", []):
        if set(c) != {"line", "from", "to", "minutes"}:
            raise ScenarioError(f"{path}: a changeover needs line, from, to, minutes")
    fpd = raw.get("faults_per_day")
    return Scenario(str(raw.get("name", path.stem)), path, str(raw.get("description", "")),
                    float(fpd) if fpd is not None else None, orders,
                    list(raw.get("changeovers", [])), "reliability" in raw)


# ---------------------------------------------------------------- master data


def scenario_master(master: dict[str, Any], sc: Scenario, days: float,
                    seed: int) -> dict[str, Any]:
    """The master data the scenario's plant runs on (a new dict)."""
    out = {k: (list(v) if isinstance(v, list) else v) for k, v in master.items()}
    if sc.changeovers:
        key = {(c["line"], c["from"], c["to"]): c for c in out.get("changeovers", [])}
        for c in sc.changeovers:
            key[(c["line"], c["from"], c["to"])] = dict(c)
        out["changeovers"] = list(key.values())
    if sc.orders.get("mode", "repeat") == "repeat":
        repeat_book(out, days, float(sc.orders.get("period_h", 48.0)))
    else:
        generate_book(out, sc.orders, days, seed)
    return out


def repeat_book(master: dict[str, Any], days: float, period_h: float) -> None:
    """The order book again every ``period_h`` (new ids, same products, quantities and
    due-date offsets) with fresh warehouse batches of every material."""
    orders, batches = master.get("orders", []), master.get("batches", [])
    repeats = max(0, math.ceil(days * 24 / period_h) - 1)
    new_o, new_b = list(orders), list(batches)
    for k in range(1, repeats + 1):
        shift = k * period_h
        for o in orders:
            num = int(re.sub(r"\D", "", o["id"]) or 0)
            new_o.append({**o, "id": f"PO-{k}{num % 1000:03d}",
                          "release_h": round(float(o["release_h"]) + shift, 1),
                          "due_h": round(float(o["due_h"]) + shift, 1)})
        for b in batches:
            num = int(re.sub(r"\D", "", b["id"]) or 0)
            new_b.append({**b, "id": f"B-{k}{num % 1000:03d}", "location": "WH"})
    master["orders"], master["batches"] = new_o, new_b


def bottleneck_s(master: dict[str, Any]) -> dict[str, float]:
    """Product → seconds per unit at its line's slowest step (parallel machines share)."""
    out: dict[str, float] = {}
    for r in master.get("recipes", []):
        steps = [float(s["cycle_s"]) / max(1, len(s["equipment"])) for s in r["routing"]]
        if steps:
            out[r["product"]] = max(out.get(r["product"], 0.0), max(steps))
    return out


def generate_book(master: dict[str, Any], spec: dict[str, Any], days: float,
                  seed: int) -> None:
    """Orders that keep each line's bottleneck ``utilisation`` busy over the horizon.

    Per line, orders arrive one after the other: product uniform among the line's,
    ``lots_per_order`` lots, released when the work already booked (processing at the
    bottleneck plus the changeover from the previous order's product), divided by
    the utilisation and by the share of the day outside maintenance windows, has
    elapsed; due after ``due_allowance`` × its own work + ``min_lead_h``. Warehouse
    batches cover the material the book needs, with 15 % to spare.
    """
    rng = random.Random(f"orders:{seed}")
    util = float(spec.get("utilisation", 0.9))
    lo, hi = (int(x) for x in spec.get("lots_per_order", [2, 5]))
    allowance = float(spec.get("due_allowance", 3.0))
    lead = float(spec.get("min_lead_h", 8.0))
    horizon = days * 24.0
    bn = bottleneck_s(master)
    products = {p["id"]: p for p in master["products"]}
    recipes = {r["product"]: r for r in master.get("recipes", [])}
    change = {(c["line"], c["from"], c["to"]): float(c["minutes"])
              for c in master.get("changeovers", [])}
    window_h = {w["line"]: float(w["duration_h"]) / float(w["every_h"])
                for w in master.get("maintenance_windows", [])}
    need: dict[str, float] = {}
    orders: list[dict[str, Any]] = []
    seq = 1000
    for line in sorted({p["line"] for p in products.values()}):
        mine = sorted(pid for pid, p in products.items() if p["line"] == line and pid in bn)
        if not mine:
            continue
        avail = 1.0 - window_h.get(line, 0.0)
        t, last = 0.0, None
        while t < horizon:
            pid = rng.choice(mine)
            qty = products[pid]["lot_size"] * rng.randint(lo, hi)
            setup_h = 0.0 if last in (None, pid) else change.get((line, last, pid), 15.0) / 60
            work_h = qty * bn[pid] / 3600 + setup_h
            seq += 1
            orders.append({"id": f"PO-{seq:04d}", "product": pid, "quantity": qty,
                           "release_h": round(t, 1),
                           "due_h": round(t + allowance * work_h + lead, 1),
                           "priority": rng.choice((1, 2, 2, 3, 3)),
                           "customer": rng.choice(CUSTOMERS)})
            for s in recipes[pid]["routing"]:
                if s.get("material"):
                    need[s["material"]] = need.get(s["material"], 0.0) + qty * float(
                        s.get("qty_per_unit", 0.0))
            t += work_h / (util * avail)
            last = pid
    orders.sort(key=lambda o: (o["release_h"], o["id"]))
    master["orders"] = orders
    size = float(spec.get("batch_size", 1000))
    batches = list(master.get("batches", []))
    have: dict[str, float] = {}
    for b in batches:
        have[b["material"]] = have.get(b["material"], 0.0) + float(b["quantity"])
    supplier = {b["material"]: b.get("supplier", "") for b in batches}
    n = 1000
    for mat, q in sorted(need.items()):
        for _ in range(math.ceil(max(0.0, 1.15 * q - have.get(mat, 0.0)) / size)):
            n += 1
            batches.append({"id": f"B-{n:04d}", "material": mat,
                            "supplier": supplier.get(mat, ""), "quantity": size,
                            "location": "WH"})
    master["batches"] = batches


# ---------------------------------------------------------------- TOML out


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _value(k)


def dump_master(master: dict[str, Any]) -> str:
    """Master data as TOML (arrays of tables as [[name]] blocks; nothing else nests)."""
    head, blocks = [], []
    for k, v in master.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v) \
                and k != "changeovers":
            for row in v:
                blocks.append(f"[[{k}]]\n" + "".join(f"{_key(a)} = {_value(b)}\n"
                                                     for a, b in row.items()))
        else:
            head.append(f"{_key(k)} = {_value(v)}\n")
    return ("# written by loopline eval from the plant's master data and a scenario\n"
            + "".join(head) + "\n" + "\n".join(blocks))
