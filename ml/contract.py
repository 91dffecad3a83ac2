"""The data contract between the history store and ml/.

core.history (hot SQLite + Parquet archive) produces exactly these frames; ml/ accepts
nothing else, so the models can be built and tested before the store exists. Quality
codes follow core.samples.Quality (0 good, 1 uncertain, 2 bad); Bad values are null.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

TS = pl.Datetime("us", "UTC")
CONTEXT = ["equipment_id", "line_id", "lot_id", "order_id", "recipe_id", "batch_id",
           "shift_id", "operator_id"]
HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "tag_id": pl.String(), "ts": TS, "value": pl.Float64(), "quality": pl.Int8(),
    **{c: pl.String() for c in CONTEXT},
}
STATES_SCHEMA: dict[str, pl.DataType] = {
    "equipment_id": pl.String(), "state": pl.String(), "reason": pl.String(),
    "start": TS, "end": TS,
}
MAINTENANCE_SCHEMA: dict[str, pl.DataType] = {
    "equipment_id": pl.String(), "fault": pl.String(), "ts": TS,
}
QUALITY_SCHEMA: dict[str, pl.DataType] = {
    "lot_id": pl.String(), "ts": TS, "scrap": pl.Boolean(), "value": pl.Float64(),
}
GOOD, UNCERTAIN, BAD = 0, 1, 2
# State names that count as an unplanned stop; "4" is the numeric state tag's code.
UNPLANNED_DOWN = ("down_unplanned", "4")

# Engineering units of the standard signals, for explanations in plain words.
UNITS: dict[str, str] = {
    "vibration_rms": "mm/s", "bearing_temp": "°C", "motor_current": "A", "zone_temp": "°C",
    "pressure": "bar", "flow": "l/min", "cycle_time": "s", "quality_value": "mm",
}


class ContractError(ValueError):
    """A frame does not follow the history contract; the message says which column."""


def conform(df: pl.DataFrame, schema: dict[str, pl.DataType], what: str) -> pl.DataFrame:
    """Check required columns and cast to the contract's types (missing context -> null)."""
    out = []
    for name, dtype in schema.items():
        if name not in df.columns:
            if what == "history" and name in CONTEXT and name != "equipment_id":
                out.append(pl.lit(None, dtype=dtype).alias(name))
                continue
            if what == "history" and name == "equipment_id":
                eq = pl.col("tag_id").str.split(".").list.first()
                out.append(eq.cast(dtype).alias(name))
                continue
            raise ContractError(f"{what}: missing column {name!r}")
        col = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            src = df.schema[name]
            if not isinstance(src, pl.Datetime):
                raise ContractError(f"{what}: column {name!r} must be a datetime, not {src}")
            col = col.dt.replace_time_zone("UTC") if src.time_zone is None else col
            col = col.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
        else:
            col = col.cast(dtype, strict=False)
        out.append(col.alias(name))
    return df.select(out)


def history(df: pl.DataFrame) -> pl.DataFrame:
    return conform(df, HISTORY_SCHEMA, "history")


@dataclass
class Events:
    """Equipment state intervals, maintenance work-order completions and prevented failures.

    ``prevented`` (equipment_id, fault, ts) are executed maintenance actions whose outcome
    was labelled effective (the fault was found): once the loop works, failures stop
    happening, and without these the models would learn that worn machines never fail.
    """

    states: pl.DataFrame
    maintenance: pl.DataFrame
    prevented: pl.DataFrame | None = None

    @classmethod
    def empty(cls) -> Events:
        return cls(pl.DataFrame(schema=STATES_SCHEMA), pl.DataFrame(schema=MAINTENANCE_SCHEMA))

    def conformed(self) -> Events:
        prev = self.prevented if self.prevented is not None else pl.DataFrame(
            schema=MAINTENANCE_SCHEMA)
        return Events(conform(self.states, STATES_SCHEMA, "states"),
                      conform(self.maintenance, MAINTENANCE_SCHEMA, "maintenance"),
                      conform(prev, MAINTENANCE_SCHEMA, "prevented"))

    def unplanned(self) -> pl.DataFrame:
        """Unplanned down intervals: the failure events the maintenance models predict."""
        return self.states.filter(pl.col("state").is_in(list(UNPLANNED_DOWN)))

    def failures(self) -> pl.DataFrame:
        """(equipment_id, ts) of every failure: unplanned down starts and prevented ones."""
        downs = self.unplanned().select("equipment_id", pl.col("start").alias("ts"))
        if self.prevented is None or self.prevented.height == 0:
            return downs
        return pl.concat([downs, self.prevented.select("equipment_id", "ts")])


def signal_of(tag: pl.Expr) -> pl.Expr:
    """'<equipment>.<signal>' -> signal (the part after the last dot)."""
    return tag.str.split(".").list.last()
