"""A seeded run-to-failure plant in the history contract, for tests and benchmarks.

Healthy equipment vary with recipe, shift, operator and material batch; faulty equipment
wear along a noisy, accelerating trend (vibration, bearing temperature, current) until an
unplanned down, then are repaired (a maintenance completion) and start fresh. Lots carry a
quality characteristic driven by zone temperature, batch and operator, and scrap when it
leaves tolerance. A small share of samples is Bad (value null) as from real drivers.
Everything is numpy-vectorised so 1,000 equipment take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from ml import contract
from ml.contract import Events

SIGNALS = ("vibration_rms", "bearing_temp", "motor_current", "zone_temp", "cycle_time")
START = datetime(2026, 1, 5, tzinfo=UTC)
NOMINAL_Q = 10.0
TOL_Q = 0.05


@dataclass(frozen=True)
class Fault:
    equipment: int  # index into the equipment list
    fail_h: float  # hours after start when the unplanned down begins
    degrade_h: float = 30.0  # how long the wear builds up before it
    repair_h: float = 3.0


@dataclass
class SyntheticPlant:
    history: pl.DataFrame
    events: Events
    quality: pl.DataFrame
    equipment: list[str]
    faults: list[Fault] = field(default_factory=list)
    start: datetime = START

    def at(self, hours: float) -> datetime:
        return self.start + timedelta(hours=hours)


def equipment_ids(n: int) -> list[str]:
    return [f"M{i:04d}" for i in range(n)]


def generate(n_equipment: int = 8, days: float = 6.0, sample_s: int = 60, seed: int = 0,
             faults: list[Fault] | None = None, bad_frac: float = 0.01,
             lot_h: float = 2.0, recipe_h: float = 4.0) -> SyntheticPlant:
    """The plant's history; ``faults`` default to none (all equipment healthy)."""
    rng = np.random.default_rng(seed)
    faults = list(faults or [])
    eqs = equipment_ids(n_equipment)
    n_t = int(days * 86400 // sample_s)
    th = np.arange(n_t) * sample_s / 3600.0  # hours since start
    e_n = n_equipment
    # Context per equipment and time: recipe blocks, shifts, operators, lots, batches.
    recipe = rng.integers(0, 2, size=(e_n, int(days * 24 / recipe_h) + 1))[:, (th // recipe_h)
                                                                          .astype(int)]
    shift = ((th % 24) // 8).astype(int)[None, :].repeat(e_n, 0)
    day = (th // 24).astype(int)
    ops = rng.integers(0, 6, size=(e_n, int(days) + 1, 3))
    operator = ops[np.arange(e_n)[:, None], day[None, :], shift]
    lot_k = (th // lot_h).astype(int)[None, :].repeat(e_n, 0)
    batches = rng.integers(0, 5, size=(e_n, lot_k.max() + 1))
    batch = batches[np.arange(e_n)[:, None], lot_k]
    eq_off = rng.normal(0, 1, size=(e_n, 1))
    op_off = np.array([0.0, 0.01, -0.01, 0.02, 0.0, -0.02])
    batch_off = np.array([0.0, 0.015, -0.015, 0.03, -0.03])

    def noise(s: float) -> np.ndarray:
        return rng.normal(0, s, size=(e_n, n_t))

    vib = 2.0 + 0.4 * recipe + 0.05 * shift + 0.1 * eq_off + noise(0.15)
    btemp = 55 + 3.0 * recipe + 1.0 * np.sin(2 * np.pi * th / 24)[None, :] + eq_off + noise(0.8)
    cur = 20 + 4.0 * recipe + 0.3 * eq_off + noise(0.5)
    zone_sp = 200 + 10.0 * recipe
    ztemp = zone_sp + 2.0 * np.sin(2 * np.pi * th / 9 + eq_off) + noise(1.5)
    ctime = 30 + 5.0 * recipe + 0.2 * shift + noise(0.3)
    down = np.zeros((e_n, n_t), dtype=bool)
    states, maint = [], []
    for f in faults:
        tau = (th - (f.fail_h - f.degrade_h)) / f.degrade_h
        w = np.clip(np.where(th < f.fail_h, tau, 0.0), 0.0, 1.0) ** 2
        w = w * (1 + 0.15 * rng.normal(0, 1, size=n_t))
        vib[f.equipment] += 6.0 * w + 0.3 * w * rng.normal(0, 1, size=n_t)
        btemp[f.equipment] += 22.0 * w
        cur[f.equipment] += 3.0 * w
        dn = (th >= f.fail_h) & (th < f.fail_h + f.repair_h)
        down[f.equipment] |= dn
        states.append((eqs[f.equipment], "down_unplanned", "bearing failure",
                       START + timedelta(hours=f.fail_h),
                       START + timedelta(hours=f.fail_h + f.repair_h)))
        maint.append((eqs[f.equipment], "bearing", START + timedelta(hours=f.fail_h + f.repair_h)))
    # Planned maintenance on every machine now and then, so 'time since maintenance'
    # is not simply a fault marker.
    for e in range(e_n):
        for h in np.sort(rng.uniform(0, days * 24, size=max(1, int(days / 3)))):
            if not down[e, min(int(h * 3600 // sample_s), n_t - 1)]:
                maint.append((eqs[e], "inspection", START + timedelta(hours=float(h))))
    vib[down], cur[down], ctime[down] = 0.2, 0.0, np.nan
    btemp[down] = 35.0
    values = {"vibration_rms": vib, "bearing_temp": btemp, "motor_current": cur,
              "zone_temp": ztemp, "cycle_time": ctime}
    # Lots: quality from mean zone-temperature deviation, batch and operator.
    zdev = ztemp - zone_sp
    lot_id_num = np.arange(e_n)[:, None] * (lot_k.max() + 1) + lot_k
    flat_lot = lot_id_num.ravel()
    n_lots = e_n * (lot_k.max() + 1)
    cnt = np.bincount(flat_lot, minlength=n_lots)
    zmean = np.bincount(flat_lot, weights=zdev.ravel(), minlength=n_lots) / np.maximum(cnt, 1)
    first = np.full(n_lots, -1)
    order = np.arange(flat_lot.size)[::-1]
    first[flat_lot[order]] = order  # first flat index of each lot
    last = np.full(n_lots, -1)
    last[flat_lot] = np.arange(flat_lot.size)
    ok = cnt > 0
    fb, fo = batch.ravel()[first[ok]], operator.ravel()[first[ok]]
    q = (NOMINAL_Q + 0.02 * zmean[ok] + batch_off[fb] + op_off[fo]
         + rng.normal(0, 0.01, size=ok.sum()))
    lot_names = np.array([f"L{x:07d}" for x in range(n_lots)])
    quality = pl.DataFrame({
        "lot_id": lot_names[ok],
        "ts": [START + timedelta(hours=float(th[i % n_t])) for i in last[ok]],
        "scrap": np.abs(q - NOMINAL_Q) > TOL_Q,
        "value": q,
    })
    history = _to_frame(eqs, th, values, recipe, shift, operator, batch, lot_names[lot_id_num],
                        q_by_lot=dict(zip(lot_names[ok], q, strict=True)),
                        last_idx=last[ok], n_t=n_t, bad_frac=bad_frac, rng=rng)
    states_df = pl.DataFrame(states, schema=contract.STATES_SCHEMA, orient="row")
    maint_df = pl.DataFrame(maint, schema=contract.MAINTENANCE_SCHEMA, orient="row")
    return SyntheticPlant(history, Events(states_df, maint_df.sort("ts")), quality, eqs, faults)


def _to_frame(eqs: list[str], th: np.ndarray, values: dict[str, np.ndarray],
              recipe: np.ndarray, shift: np.ndarray, operator: np.ndarray, batch: np.ndarray,
              lots: np.ndarray, q_by_lot: dict[str, float], last_idx: np.ndarray, n_t: int,
              bad_frac: float, rng: np.random.Generator) -> pl.DataFrame:
    e_n = len(eqs)
    step_us = round((th[1] - th[0]) * 3.6e9) if th.size > 1 else 0
    offsets = (np.arange(th.size, dtype=np.int64) * step_us).astype("timedelta64[us]")
    times = pl.Series("ts", np.datetime64(START.replace(tzinfo=None), "us") + offsets
                      ).dt.replace_time_zone("UTC")
    eq_s = pl.Series(eqs)
    frames = []
    for sig, arr in values.items():
        v = arr.ravel().astype(np.float64)
        qual = np.zeros(v.size, dtype=np.int8)
        bad = (rng.random(v.size) < bad_frac) | ~np.isfinite(v)
        qual[bad] = 2
        v = np.where(bad, np.nan, v)
        e_idx = np.repeat(np.arange(e_n), n_t)
        frames.append(pl.DataFrame({
            "tag_id": (eq_s + "." + sig).gather(e_idx),
            "ts": times.gather(np.tile(np.arange(n_t), e_n)),
            "value": pl.Series(v).fill_nan(None),
            "quality": qual,
            "equipment_id": eq_s.gather(e_idx),
            "recipe_id": pl.Series(["R1", "R2"]).gather(recipe.ravel()),
            "shift_id": pl.Series(["S1", "S2", "S3"]).gather(shift.ravel()),
            "operator_id": pl.Series([f"OP{i}" for i in range(6)]).gather(operator.ravel()),
            "batch_id": pl.Series([f"B{i}" for i in range(5)]).gather(batch.ravel()),
            "lot_id": lots.ravel(),
        }))
    # One quality_value sample at the end of each lot.
    e_idx = last_idx // n_t
    t_idx = last_idx % n_t
    lot_names = lots.ravel()[last_idx]
    frames.append(pl.DataFrame({
        "tag_id": (eq_s + ".quality_value").gather(e_idx),
        "ts": times.gather(t_idx),
        "value": np.array([q_by_lot[x] for x in lot_names]),
        "quality": np.zeros(len(last_idx), dtype=np.int8),
        "equipment_id": eq_s.gather(e_idx),
        "recipe_id": pl.Series(["R1", "R2"]).gather(recipe.ravel()[last_idx]),
        "shift_id": pl.Series(["S1", "S2", "S3"]).gather(shift.ravel()[last_idx]),
        "operator_id": pl.Series([f"OP{i}" for i in range(6)]).gather(operator.ravel()[last_idx]),
        "batch_id": pl.Series([f"B{i}" for i in range(5)]).gather(batch.ravel()[last_idx]),
        "lot_id": lot_names,
    }))
    h = pl.concat(frames).with_columns(
        pl.lit("L1").alias("line_id"), pl.lit(None, pl.String).alias("order_id"))
    return contract.history(h).sort("ts", "tag_id")
