"""Feature pipelines: one function per grain builds training and scoring features alike.

Per equipment (``equipment_features``): for each signal and trailing window, the mean,
std, slope per hour, RMS, max, number of good samples and the mean change against the
same recipe's baseline in the same operating mode (running, idle, off: from the state
intervals) — in the signal's unit (``dbase``) and in that baseline's spread (``zbase``,
comparable across machines) — plus hours and (estimated) cycles since the last maintenance.
A window holds no sample from before the equipment's last completed maintenance (a
repaired machine's run-up to its failure is not its present).
The change statistics ``dmean``/``drms``/``dmax`` compare the window with the machine's
own normal: the median of its ``every``-bucket means (bucket maxima for ``dmax``) over
``spec.base`` before the longest window, past data only (``FeatureSpec.lookback``).
Per lot (``lot_features``): process aggregates joined with recipe, batch, shift and
operator. Only Good samples enter any feature; a window with too little good data is
flagged in ``<signal>__low_<window>`` / ``low_data`` and left null, never filled.

Feature names are ``<signal>__<stat>_<window>`` or ``ctx__<name>`` so an explanation can
map a contribution back to a signal (see ml.explain.parse_feature).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from ml import contract
from ml.contract import GOOD, Events

DEFAULT_SIGNALS = ("vibration_rms", "bearing_temp", "motor_current", "zone_temp", "pressure",
                   "flow", "cycle_time")
STATS = ("mean", "std", "slope", "rms", "max", "dbase", "zbase", "dmean", "drms", "dmax", "n")
# The machine's operating mode at a sample, from the state intervals: what the recipe
# baseline is kept per (a bearing at 43 °C is normal running, 12 °C too warm idling).
RUN_RUNNING, RUN_IDLE, RUN_OFF, RUN_UNKNOWN = 1, 0, 2, -1
RUNNING_STATES = ("running", "1")
OFF_STATES = ("down_unplanned", "down_planned", "unknown", "3", "4")
# Absolute levels: they say which machine it is as much as how it is doing. The failure
# and RUL models use the change statistics instead (d*: vs the machine's own normal).
LEVEL_STATS = ("mean", "rms", "max")
LOT_STATS = ("mean", "std", "min", "max")
ANY = "any_signal"  # pseudo-signal of cross-signal features (``any_signal__zmax_<w>``)
LOT_CONTEXT = ("recipe_id", "batch_id", "shift_id", "operator_id", "equipment_id", "line_id")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def slope_expr(x: pl.Expr, t: pl.Expr, window: int, group: str) -> pl.Expr:
    """Least-squares slope of x over t in a trailing window of rows, per group."""
    def rm(e: pl.Expr) -> pl.Expr:
        return e.rolling_mean(window, min_samples=3).over(group)
    mt, mx = rm(t), rm(x)
    var = rm(t * t) - mt * mt
    return pl.when(var > 1e-12).then((rm(x * t) - mx * mt) / var).otherwise(None)


def duration(s: str) -> timedelta:
    """'15m', '6h', '1d', '30s' -> timedelta (the subset of polars durations we accept)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return timedelta(seconds=float(s[:-1]) * units[s[-1]])
    except (KeyError, ValueError, IndexError):
        raise ValueError(f"bad duration {s!r}: use e.g. 30s, 15m, 6h, 1d") from None


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that shapes the features; saved with each model so scoring matches."""

    signals: tuple[str, ...] = DEFAULT_SIGNALS
    every: str = "15m"
    windows: tuple[str, ...] = ("1h", "6h")
    min_good_frac: float = 0.5  # of the samples the tag's cadence would give in the window
    # The machine's own normal: median of its `every`-bucket means over this long window,
    # ending where the longest feature window starts (so the change itself is not in it).
    base: str = "12h"

    def __post_init__(self) -> None:
        ev = duration(self.every)
        for w in (*self.windows, self.base):
            if duration(w) % ev:
                raise ValueError(f"window {w} is not a multiple of every={self.every}")

    def lookback(self) -> timedelta:
        """History that the features of one window end need: longest window plus base."""
        return max(duration(w) for w in self.windows) + duration(self.base)

    def as_dict(self) -> dict[str, object]:
        return {"signals": list(self.signals), "every": self.every,
                "windows": list(self.windows), "min_good_frac": self.min_good_frac,
                "base": self.base}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> FeatureSpec:
        return cls(signals=tuple(d["signals"]), every=str(d["every"]),  # type: ignore[arg-type]
                   windows=tuple(d["windows"]),  # type: ignore[arg-type]
                   min_good_frac=float(d["min_good_frac"]),  # type: ignore[arg-type]
                   base=str(d.get("base", "12h")))


def good_samples(history: pl.DataFrame, signals: tuple[str, ...] | None = None) -> pl.DataFrame:
    """Only Good, finite values, with the signal split out of the tag id."""
    h = history.with_columns(contract.signal_of(pl.col("tag_id")).alias("signal"))
    if signals is not None:
        h = h.filter(pl.col("signal").is_in(list(signals)))
    return h.filter((pl.col("quality") == GOOD) & pl.col("value").is_finite())


def with_run_mode(samples: pl.DataFrame, events: Events | None) -> pl.DataFrame:
    """Add ``run``: the equipment's operating mode at each sample (RUN_* codes).

    Running, powered but not producing (idle, starved, blocked, setup) or off (down,
    no data); RUN_UNKNOWN where no state interval covers the sample or without events.
    """
    states = events.conformed().states if events is not None else None
    if states is None or states.height == 0 or samples.height == 0:
        return samples.with_columns(pl.lit(RUN_UNKNOWN, pl.Int8).alias("run"))
    st = states.select(
        "equipment_id", pl.col("start").alias("_start"), pl.col("end").alias("_end"),
        pl.when(pl.col("state").is_in(list(RUNNING_STATES))).then(RUN_RUNNING)
        .when(pl.col("state").is_in(list(OFF_STATES))).then(RUN_OFF)
        .otherwise(RUN_IDLE).cast(pl.Int8).alias("run")).sort("_start")
    srt = samples if samples["ts"].is_sorted() else samples.sort("ts")
    out = srt.join_asof(st, left_on="ts", right_on="_start", by="equipment_id",
                        strategy="backward", check_sortedness=False)
    inside = pl.col("_end").is_null() | (pl.col("ts") < pl.col("_end"))
    return out.with_columns(
        pl.when(pl.col("run").is_not_null() & inside).then(pl.col("run"))
        .otherwise(RUN_UNKNOWN).cast(pl.Int8).alias("run")).drop("_start", "_end")


def recipe_baselines(history: pl.DataFrame, signals: tuple[str, ...] = DEFAULT_SIGNALS,
                     events: Events | None = None) -> pl.DataFrame:
    """Median good value per equipment, signal, recipe and operating mode ('normal'), and
    its spread (scaled MAD, floored at 0.1 % of the median): what ``dbase``/``zbase``
    compare against. Without events every sample has mode RUN_UNKNOWN."""
    g = with_run_mode(good_samples(contract.history(history), signals)
                      .filter(pl.col("recipe_id").is_not_null()), events)
    med = pl.col("value").median()
    mad = (pl.col("value") - med).abs().median() * 1.4826
    return g.group_by("equipment_id", "signal", "recipe_id", "run").agg(
        med.alias("baseline"),
        pl.max_horizontal(mad, med.abs() * 1e-3, pl.lit(1e-6)).alias("spread"))


def _cadence(history: pl.DataFrame) -> pl.DataFrame:
    """Median sampling interval (s) per equipment and signal, from samples of any quality."""
    h = history.select("equipment_id", "tag_id", "ts")
    if not h["ts"].is_sorted():
        h = h.sort("ts")  # store frames come sorted by ts; within each tag that suffices
    d = h.with_columns(pl.col("ts").diff().over("tag_id").dt.total_microseconds().alias("dt"))
    c = d.group_by("equipment_id", "tag_id").agg((pl.col("dt").median() / 1e6).alias("cadence_s"))
    return c.select("equipment_id", contract.signal_of(pl.col("tag_id")).alias("signal"),
                    "cadence_s")


def equipment_features(history: pl.DataFrame, events: Events | None = None,
                       spec: FeatureSpec | None = None, baselines: pl.DataFrame | None = None,
                       *, as_of: datetime | None = None, latest: bool = False) -> pl.DataFrame:
    """One row per equipment and window end (every ``spec.every``) up to ``as_of``.

    ``latest`` keeps only the window ending at ``as_of`` (scoring); otherwise every
    complete window in the history (training). Same code path either way.
    """
    spec = spec or FeatureSpec()
    history = contract.history(history)
    every, periods = duration(spec.every), [duration(w) for w in spec.windows]
    if as_of is None:  # training: windows on the epoch-aligned grid, last complete one
        last = history["ts"].max()
        if last is None:
            raise ValueError("history is empty")
        as_of = last - (last - EPOCH) % every  # type: ignore[operator]
    longest = max(periods)
    lookback = spec.lookback()
    if latest:
        history = history.filter((pl.col("ts") > as_of - lookback) & (pl.col("ts") <= as_of))
    offset = (as_of - EPOCH) % every
    cad = _cadence(history)
    g = good_samples(history, spec.signals)
    if baselines is not None and baselines.height:
        keys = ["equipment_id", "signal", "recipe_id"]
        if "run" in baselines.columns:  # baselines per operating mode (older models: not)
            g = with_run_mode(g, events)
            keys.append("run")
        if "spread" not in baselines.columns:
            baselines = baselines.with_columns(pl.lit(None, pl.Float64).alias("spread"))
        g = g.join(baselines.select(*keys, "baseline", "spread"), on=keys, how="left")
    else:
        g = g.with_columns(pl.lit(None, dtype=pl.Float64).alias("baseline"),
                           pl.lit(None, dtype=pl.Float64).alias("spread"))
    t0 = history["ts"].min()
    # Two stages so long overlapping windows stay cheap: sums per `every` bucket, then
    # rolling sums of k buckets on a complete grid (a bucket without good data adds 0).
    # Hours from a fixed origin make the slope a function of sums as well.
    g = g.with_columns(
        (pl.col("value") - pl.col("baseline")).alias("delta"),
        ((pl.col("value") - pl.col("baseline")) / pl.col("spread")).alias("zdelta"),
        ((pl.col("ts") - t0).dt.total_microseconds() / 3.6e9).alias("th"),
    )
    if not g["ts"].is_sorted():
        g = g.sort("ts")  # sorted by time overall means sorted within every group
    x, th = pl.col("value"), pl.col("th")
    buckets = g.group_by_dynamic(
        "ts", every=every, offset=offset, closed="right", label="right",
        group_by=["equipment_id", "signal"], start_by="window",
    ).agg(
        pl.len().cast(pl.Float64).alias("n"), x.sum().alias("sx"), (x * x).sum().alias("sxx"),
        th.sum().alias("st"), (th * th).sum().alias("stt"), (th * x).sum().alias("stx"),
        x.max().alias("mx"), pl.col("delta").sum().alias("sd"),
        pl.col("delta").count().cast(pl.Float64).alias("nd"),
        pl.col("zdelta").sum().alias("sz"), pl.col("zdelta").count().cast(pl.Float64).alias("nz"),
        pl.col("recipe_id").drop_nulls().last().alias("recipe_id"),
    )
    tmin = history["ts"].min()
    n_b = int((as_of - tmin) // every) if tmin is not None and tmin < as_of else 0
    if latest:
        n_b = min(n_b, int(lookback // every) - 1)
    labels = pl.DataFrame({"ts": pl.datetime_range(as_of - n_b * every, as_of, every,
                                                   time_unit="us", time_zone="UTC",
                                                   eager=True)})
    pairs = (history.select("equipment_id", contract.signal_of(pl.col("tag_id")).alias("signal"))
             .unique().filter(pl.col("signal").is_in(list(spec.signals))))
    sums = ["n", "sx", "sxx", "st", "stt", "stx", "sd", "nd", "sz", "nz"]
    grid = (pairs.join(labels, how="cross")
            .join(buckets, on=["equipment_id", "signal", "ts"], how="left")
            .with_columns([pl.col(c).fill_null(0.0) for c in sums])
            .sort("equipment_id", "signal", "ts"))
    key = ["equipment_id", "signal"]
    kb, lag = int(duration(spec.base) // every), int(longest // every)
    own = [_own_normal(grid, "sx", labels.height, kb, lag, last_only=latest),
           _own_normal(grid, "mx", labels.height, kb, lag, last_only=latest)]
    epochs = _epochs(grid, events, labels.height, every)
    longs = []
    for w, period in zip(spec.windows, periods, strict=True):
        k = int(period // every)
        r = grid.select("equipment_id", "signal", "ts").with_columns(
            [*_rolling(grid, sums, k, labels.height, epochs), *own])
        n = pl.col("n")
        den = n * pl.col("stt") - pl.col("st") ** 2
        var = (pl.col("sxx") - pl.col("sx") ** 2 / n) / (n - 1)
        agg = r.with_columns(
            pl.when(n > 0).then(pl.col("sx") / n).alias("mean"),
            pl.when(n > 1).then(pl.max_horizontal(var, pl.lit(0.0)).sqrt()).alias("std"),
            pl.when((n >= 3) & (den > 1e-9 * n ** 2))
            .then((n * pl.col("stx") - pl.col("st") * pl.col("sx")) / den).alias("slope"),
            pl.when(n > 0).then((pl.col("sxx") / n).sqrt()).alias("rms"),
            pl.when(n > 0).then(pl.col("mx")).alias("max"),
            pl.when(pl.col("nd") > 0).then(pl.col("sd") / pl.col("nd")).alias("dbase"),
            pl.when(pl.col("nz") > 0).then(pl.col("sz") / pl.col("nz")).alias("zbase"),
        ).with_columns(
            (pl.col("mean") - pl.col("own")).alias("dmean"),
            (pl.col("rms") - pl.col("own").abs()).alias("drms"),
            (pl.col("max") - pl.col("own_mx")).alias("dmax"),
        ).join(cad, on=key, how="left").with_columns(
            (n < spec.min_good_frac * period.total_seconds() / pl.col("cadence_s"))
            .fill_null(True).cast(pl.Float64).alias("low"))
        if latest:
            agg = agg.filter(pl.col("ts") == as_of)
        longs.append((w, agg))
    recipe = (grid.group_by("equipment_id", "ts").agg(pl.col("recipe_id").drop_nulls().first())
              .sort("equipment_id", "ts")
              .with_columns(pl.col("recipe_id").forward_fill().over("equipment_id")))
    # Wide: one join per (window, signal) on (equipment, ts) — far cheaper than a pivot.
    wide = recipe.select("equipment_id", "ts")
    if latest:
        wide = wide.filter(pl.col("ts") == as_of)
    for w, agg in longs:
        for sig, part in agg.partition_by("signal", as_dict=True).items():
            cols = [pl.col(st).cast(pl.Float64).alias(f"{sig[0]}__{st}_{w}")
                    for st in (*STATS, "low")]
            wide = wide.join(part.select("equipment_id", "ts", *cols),
                             on=["equipment_id", "ts"], how="left")
    wide = _complete_columns(wide, spec, history)
    low_cols = [c for c in wide.columns if "__low_" in c]
    # A window without data is low; a signal the machine does not have (a lathe has no
    # flow) is not applicable — null, so it neither flags nor fills the row.
    has: dict[str, list[str]] = {}
    for eq, sig in cad.select("equipment_id", "signal").unique().iter_rows():
        has.setdefault(sig, []).append(eq)
    wide = wide.with_columns(
        [pl.when(pl.col("equipment_id").is_in(has.get(c.split("__low_")[0], [])))
         .then(pl.col(c).fill_null(1.0)).otherwise(None).alias(c) for c in low_cols]
        + [pl.col(c).fill_null(0.0) for c in wide.columns if "__n_" in c]
    )
    wide = wide.with_columns(
        pl.max_horizontal([pl.col(c) for c in low_cols]).cast(pl.Boolean).fill_null(True)
        .alias("low_data") if low_cols else pl.lit(True).alias("low_data"))
    # The most abnormal signal, in spreads: one scale for any fault on any machine type.
    wide = wide.with_columns([
        pl.max_horizontal([pl.col(c).abs() for c in zc]).alias(f"{ANY}__zmax_{w}")
        for w in spec.windows
        if (zc := [c for c in wide.columns if c.endswith(f"__zbase_{w}")])])
    wide = wide.join(recipe, on=["equipment_id", "ts"], how="left")
    return _with_maintenance(wide, events, spec)


def _rolling(grid: pl.DataFrame, sums: list[str], k: int, length: int,
             epochs: np.ndarray | None = None) -> list[pl.Series]:
    """Trailing k-bucket sums (and max of ``mx``) per group of a complete, sorted grid.

    Every group has ``length`` rows, so the grid reshapes to (groups, length) and a
    sliding-window view sums all windows at once — no per-group expression. (Not a
    cumulative sum: differences of long running totals would cost the slope digits.)
    ``epochs`` (groups, length): maintenance count at each bucket; a window then only
    sums the buckets of its own end's epoch, so nothing from before a repair is in it.
    """
    g = grid.height // length if length else 0
    view = np.lib.stride_tricks.sliding_window_view
    arrays = {c: grid[c].to_numpy().reshape(g, length) for c in sums}
    arrays["mx"] = grid["mx"].fill_null(-np.inf).to_numpy().reshape(g, length)
    pads = {c: np.concatenate([np.full((g, k - 1), -np.inf if c == "mx" else 0.0), a], axis=1)
            for c, a in arrays.items()}
    res = {c: (view(p, k, axis=1).max(axis=2) if c == "mx" else view(p, k, axis=1).sum(axis=2))
           for c, p in pads.items()}
    if epochs is not None and g:
        rows = np.flatnonzero(epochs[:, 0] != epochs[:, -1])  # groups with a repair in view
        ep = np.concatenate([np.full((g, k - 1), -1), epochs], axis=1)
        step = max(1, 4_000_000 // max(1, length * k))
        for i in range(0, rows.size, step):
            r = rows[i:i + step]
            same = view(ep[r], k, axis=1) == epochs[r][..., None]
            for c, p in pads.items():
                w = view(p[r], k, axis=1)
                res[c][r] = (np.where(same, w, -np.inf).max(axis=2) if c == "mx"
                             else np.where(same, w, 0.0).sum(axis=2))
    out = [pl.Series(c, res[c].ravel()) for c in sums]
    out.append(pl.Series("mx", res["mx"].ravel()).replace(-np.inf, None))
    return out


def _epochs(grid: pl.DataFrame, events: Events | None, length: int, every: timedelta
            ) -> np.ndarray | None:
    """Completed maintenance count per equipment at each grid bucket (groups, length),
    counted at the bucket's start: the bucket a repair falls in still holds readings
    from before it, so it stays with the old epoch."""
    if events is None or grid.height == 0:
        return None
    maint = events.conformed().maintenance
    if maint.height == 0:
        return None
    m = (maint.select("equipment_id", pl.col("ts").alias("_mts")).sort("_mts")
         .with_columns(pl.col("_mts").rank("ordinal").over("equipment_id")
                       .cast(pl.Int64).alias("_epoch")))
    keys = (grid.select("equipment_id", (pl.col("ts") - every).alias("ts")).with_row_index("_i")
            .sort("ts"))
    e = (keys.join_asof(m, left_on="ts", right_on="_mts", by="equipment_id",
                        strategy="backward", check_sortedness=False)
         .sort("_i")["_epoch"].fill_null(0).to_numpy())
    return e.reshape(grid.height // length, length)


def _own_normal(grid: pl.DataFrame, col: str, length: int, kb: int, lag: int,
                last_only: bool = False) -> pl.Series:
    """Each machine's own normal per signal, causally: the median of its bucket means
    (``sx``) or bucket maxima (``mx``) over the ``kb`` buckets that end ``lag`` buckets
    before each window end.

    Null until a quarter of those buckets had good data. Past data only, so training
    on a long history and scoring on ``FeatureSpec.lookback`` give the same values.
    ``last_only`` (scoring: only the newest window end is kept) computes the last
    position of each group and leaves the rest null.
    """
    g = grid.height // length if length else 0
    n = grid["n"].to_numpy().reshape(g, length)
    if col == "sx":
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(n > 0, grid["sx"].to_numpy().reshape(g, length) / n, np.nan)
    else:
        means = grid[col].cast(pl.Float64).fill_null(np.nan).to_numpy().reshape(g, length)
    pad = np.concatenate([np.full((g, lag + kb - 1), np.nan), means], axis=1)
    out = np.full((g, length), np.nan)
    first = length - 1 if last_only else 0
    step = max(1, 4_000_000 // max(1, (length - first) * kb))  # bounded memory
    view = np.lib.stride_tricks.sliding_window_view
    for i in range(0, g, step):
        win = view(pad[i:i + step], kb, axis=1)[:, first:length]
        out[i:i + step, first:] = _nanmedian(win, max(1, kb // 4))
    return pl.Series("own" if col == "sx" else f"own_{col}", out.ravel()).fill_nan(None)


def _nanmedian(win: np.ndarray, min_count: int) -> np.ndarray:
    """Median over the last axis ignoring NaN; NaN where fewer than ``min_count`` values.

    A sort puts NaN last, so the median of the c finite values sits at (c-1)//2 and
    c//2 — far cheaper than ``np.nanmedian``'s masked-array path on 100,000s of rows.
    """
    srt = np.sort(win, axis=-1)
    cnt = np.isfinite(win).sum(axis=-1)
    lo = np.maximum(cnt - 1, 0) // 2
    hi = cnt // 2
    a = np.take_along_axis(srt, lo[..., None], axis=-1)[..., 0]
    b = np.take_along_axis(srt, np.minimum(hi, win.shape[-1] - 1)[..., None], axis=-1)[..., 0]
    return np.where(cnt >= min_count, (a + b) / 2.0, np.nan)


def _complete_columns(wide: pl.DataFrame, spec: FeatureSpec, history: pl.DataFrame
                      ) -> pl.DataFrame:
    """Every (signal, stat, window) column that the plant has, even if no window had data.

    Without this a signal that went all-Bad would silently drop a column at scoring time.
    """
    present = (history.select(contract.signal_of(pl.col("tag_id")).unique())
               .to_series().to_list())
    want = [f"{s}__{st}_{w}" for s in spec.signals if s in present
            for w in spec.windows for st in (*STATS, "low")]
    missing = [c for c in want if c not in wide.columns]
    if missing:
        wide = wide.with_columns([pl.lit(None, dtype=pl.Float64).alias(c) for c in missing])
    return wide


def _with_maintenance(wide: pl.DataFrame, events: Events | None, spec: FeatureSpec
                      ) -> pl.DataFrame:
    """Hours since the last completed maintenance and the cycles that implies.

    Cycles are estimated from hours and the window's mean cycle time so scoring on a
    short history gives exactly what training on the full history gave.
    """
    maint = (events.conformed().maintenance if events is not None
             else pl.DataFrame(schema=contract.MAINTENANCE_SCHEMA))
    m = maint.select("equipment_id", pl.col("ts").alias("maint_ts")).sort("maint_ts")
    out = wide.sort("ts").join_asof(m, left_on="ts", right_on="maint_ts", by="equipment_id",
                                    strategy="backward", check_sortedness=False)
    hours = (pl.col("ts") - pl.col("maint_ts")).dt.total_seconds() / 3600.0
    ct = f"cycle_time__mean_{spec.windows[0]}"
    # a window whose cycle time reads 0 (a machine reporting 0 while idle) has no estimate
    cycles = (pl.when(pl.col(ct) > 0).then(hours * 3600.0 / pl.col(ct))
              if ct in out.columns else pl.lit(None, pl.Float64))
    return out.with_columns(
        hours.alias("ctx__hours_since_maint"), cycles.alias("ctx__cycles_since_maint"),
        pl.col("ts").dt.hour().cast(pl.Float64).alias("ctx__hour"),
    ).drop("maint_ts").sort("equipment_id", "ts")


def signal_features(df: pl.DataFrame) -> list[str]:
    """The model inputs among a feature frame's columns (not keys, flags or labels)."""
    return [c for c in df.columns if ("__" in c and "__low_" not in c)]


def lot_features(history: pl.DataFrame, signals: tuple[str, ...] = DEFAULT_SIGNALS,
                 tables: dict[str, pl.DataFrame] | None = None, min_samples: int = 5
                 ) -> pl.DataFrame:
    """One row per lot: process aggregates (good samples only) and the lot's context.

    ``tables`` joins attributes of recipes, material batches, shifts or operators,
    keyed by the context column (e.g. {"batch_id": batches}); their numeric columns
    become ``<key>__<column>`` features. The lot's quality_value is not an input: it
    is what the quality model predicts.
    """
    history = contract.history(history)
    h = history.filter(pl.col("lot_id").is_not_null())
    g = good_samples(h, tuple(s for s in signals if s != "quality_value"))
    x = pl.col("value")
    agg = g.group_by("lot_id", "signal").agg(
        x.mean().alias("mean"), x.std().alias("std"), x.min().alias("min"),
        x.max().alias("max"), pl.len().alias("n"))
    long = agg.unpivot(index=["lot_id", "signal"], on=list(LOT_STATS), variable_name="stat",
                       value_name="v").with_columns(
        (pl.col("signal") + "__" + pl.col("stat") + "_lot").alias("feature"))
    wide = long.pivot(on="feature", index="lot_id", values="v", aggregate_function="first")
    low = agg.group_by("lot_id").agg((pl.col("n").min() < min_samples).alias("low_data"))
    ctx = h.group_by("lot_id").agg(
        [pl.col(c).drop_nulls().mode().sort().first().alias(c)
         for c in ("order_id", *LOT_CONTEXT)]
        + [pl.col("ts").min().alias("start"), pl.col("ts").max().alias("end")]
    ).with_columns(
        ((pl.col("end") - pl.col("start")).dt.total_seconds() / 3600.0).alias("ctx__duration_h"))
    out = ctx.join(wide, on="lot_id", how="left").join(low, on="lot_id", how="left")
    out = out.with_columns(pl.col("low_data").fill_null(True))
    for key, table in (tables or {}).items():
        num = [c for c, t in table.schema.items() if c != key and t.is_numeric()]
        out = out.join(table.select(key, *[pl.col(c).alias(f"{key}__{c}") for c in num]),
                       on=key, how="left")
    return out.sort("start", "lot_id")  # lots of many machines start together: keep order stable
