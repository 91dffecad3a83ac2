"""SQLModel tables for the loopline domain (ISA-95 flavoured, see DESIGN.md).

Site → Area → Line → Equipment → TagMeta; products, recipes and routings; materials,
batches and stock; orders → operations → lots with genealogy; shifts and users;
equipment states, quality, holds, maintenance, alarms; the closed loop
(recommendation → decision → action → outcome), model versions, plans, the audit
chain and the history tables (narrow samples, chunks, context intervals).

All datetimes are UTC: columns use ``UTCDateTime`` so they come back aware. JSON
payloads are text (portable across SQLite and PostgreSQL). Master-data ids are the
plant's own ids (strings) so loading master data twice upserts instead of duplicating;
event rows (states, measurements, alarms, samples) use integer autoincrement keys.
No ORM relationships: callers query by id, which keeps rows plain and cheap.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
    event,
)
from sqlmodel import Field, SQLModel

from core.store.types import UTCDateTime


def utc(*, nullable: bool = False, index: bool = False, default: Any = ...) -> Any:
    """A UTC datetime column (aware in, aware out)."""
    if default is ...:
        default = None if nullable else ...
    return Field(default=default, sa_type=UTCDateTime, nullable=nullable, index=index)


def fk(target: str, *, nullable: bool = False, index: bool = True) -> Any:
    """A string foreign key; nullable ones default to None."""
    return Field(default=None if nullable else ..., foreign_key=target,
                 nullable=nullable, index=index)


# ---------------------------------------------------------------- store facts


class Meta(SQLModel, table=True):
    """Store-level key/value facts: schema_version, plant_epoch."""

    __tablename__ = "meta"
    key: str = Field(primary_key=True)
    value: str


class LineLease(SQLModel, table=True):
    """Which runtime owns a line's drivers and actions, until ``expires_at`` (wall UTC);
    renewed by its heartbeat (``core.store.leases``)."""

    __tablename__ = "line_lease"
    line_id: str = Field(primary_key=True)
    owner: str  # the runtime's id: "<host>:<pid>:<random>"
    host: str = ""
    pid: int = 0
    acquired_at: datetime = utc()
    heartbeat_at: datetime = utc()
    expires_at: datetime = utc()


# ---------------------------------------------------------------- plant structure


class Site(SQLModel, table=True):
    __tablename__ = "site"
    id: str = Field(primary_key=True)
    name: str
    timezone: str = "UTC"


class Area(SQLModel, table=True):
    __tablename__ = "area"
    id: str = Field(primary_key=True)
    site_id: str = fk("site.id")
    name: str


class Line(SQLModel, table=True):
    __tablename__ = "line"
    id: str = Field(primary_key=True)
    area_id: str = fk("area.id")
    name: str
    driver: str = ""
    position: int = 0  # order in the config, for display


class Equipment(SQLModel, table=True):
    __tablename__ = "equipment"
    id: str = Field(primary_key=True)
    line_id: str = fk("line.id")
    name: str
    type: str  # lathe, mill, molder ... (recipe setpoints and ML features key on it)
    driver: str = ""
    ideal_cycle_s: float
    position: int = 0  # place in the line's flow


class TagMeta(SQLModel, table=True):
    """What a tag id means; the sample table carries only the id."""

    __tablename__ = "tag_meta"
    id: str = Field(primary_key=True)  # "<equipment>.<name>" or "plant.<name>"
    name: str
    equipment_id: str | None = fk("equipment.id", nullable=True)
    line_id: str | None = fk("line.id", nullable=True)
    driver: str
    address: str
    kind: str = "signal"
    data_type: str = "float64"
    unit: str = ""
    description: str = ""
    writable: bool = False
    is_key: bool = False
    lolo: float | None = None
    lo: float | None = None
    hi: float | None = None
    hihi: float | None = None


# ---------------------------------------------------------------- products & recipes


class Product(SQLModel, table=True):
    __tablename__ = "product"
    id: str = Field(primary_key=True)
    name: str
    line_id: str = fk("line.id")
    lot_size: int = Field(gt=0)


class QualityCharacteristic(SQLModel, table=True):
    """A measured product characteristic with its spec limits."""

    __tablename__ = "quality_characteristic"
    id: str = Field(primary_key=True)  # "<product>.<name>"
    product_id: str = fk("product.id")
    name: str
    unit: str = ""
    target: float
    lsl: float
    usl: float


class Recipe(SQLModel, table=True):
    __tablename__ = "recipe"
    id: str = Field(primary_key=True)
    product_id: str = fk("product.id")
    version: int = 1


class RecipeSetpoint(SQLModel, table=True):
    """Target and allowed range per equipment type; setpoint writes outside lo..hi are refused."""

    __tablename__ = "recipe_setpoint"
    id: str = Field(primary_key=True)  # "<recipe>.<equipment_type>.<name>"
    recipe_id: str = fk("recipe.id")
    equipment_type: str
    name: str
    value: float
    lo: float
    hi: float
    unit: str = ""


class RoutingStep(SQLModel, table=True):
    __tablename__ = "routing_step"
    id: str = Field(primary_key=True)  # "<recipe>.<step>"
    recipe_id: str = fk("recipe.id")
    product_id: str = fk("product.id")
    step: int
    equipment: str  # eligible equipment ids, comma-separated, in preference order
    cycle_s: float
    material_id: str | None = fk("material.id", nullable=True)
    qty_per_unit: float = 0.0

    def eligible(self) -> list[str]:
        return [e for e in self.equipment.split(",") if e]


class Changeover(SQLModel, table=True):
    __tablename__ = "changeover"
    id: str = Field(primary_key=True)  # "<line>:<from>-><to>"
    line_id: str = fk("line.id")
    from_product_id: str = fk("product.id")
    to_product_id: str = fk("product.id")
    minutes: float


# ---------------------------------------------------------------- materials


class Material(SQLModel, table=True):
    __tablename__ = "material"
    id: str = Field(primary_key=True)
    name: str
    uom: str = "pcs"


class MaterialBatch(SQLModel, table=True):
    __tablename__ = "material_batch"
    id: str = Field(primary_key=True)
    material_id: str = fk("material.id")
    supplier: str = ""
    quantity: float  # as received
    status: str = "released"  # released | quarantined | consumed | blocked


class StockLocation(SQLModel, table=True):
    __tablename__ = "stock_location"
    id: str = Field(primary_key=True)
    name: str


class Stock(SQLModel, table=True):
    """Quantity of one batch at one location (what replenishment moves)."""

    __tablename__ = "stock"
    id: str = Field(primary_key=True)  # "<location>:<batch>"
    location_id: str = fk("stock_location.id")
    material_id: str = fk("material.id")
    batch_id: str | None = fk("material_batch.id", nullable=True)
    quantity: float


# ---------------------------------------------------------------- production


class ProductionOrder(SQLModel, table=True):
    __tablename__ = "production_order"
    id: str = Field(primary_key=True)
    product_id: str = fk("product.id")
    recipe_id: str | None = fk("recipe.id", nullable=True)
    line_id: str | None = fk("line.id", nullable=True)
    quantity: int
    release_at: datetime = utc()
    due_at: datetime = utc(index=True)
    priority: int = 2  # 1 = most urgent
    customer: str = ""
    status: str = Field(default="planned", index=True)
    # planned | released | in_progress | complete | cancelled


class Operation(SQLModel, table=True):
    """One routing step of one order, on one piece of equipment once dispatched."""

    __tablename__ = "operation"
    id: str = Field(primary_key=True)  # "<order>-<step>"
    order_id: str = fk("production_order.id")
    routing_step_id: str = fk("routing_step.id", index=False)
    step: int
    equipment_id: str | None = fk("equipment.id", nullable=True)
    status: str = Field(default="planned", index=True)
    # planned | ready | running | paused | complete
    planned_start: datetime | None = utc(nullable=True)
    planned_end: datetime | None = utc(nullable=True)
    actual_start: datetime | None = utc(nullable=True)
    actual_end: datetime | None = utc(nullable=True)
    qty_good: int = 0
    qty_scrap: int = 0


class Lot(SQLModel, table=True):
    __tablename__ = "lot"
    id: str = Field(primary_key=True)  # "L-<order number:03d><k:02d>"
    order_id: str = fk("production_order.id")
    product_id: str = fk("product.id")
    quantity: int
    status: str = Field(default="planned", index=True)
    # planned | wip | held | released | complete | scrapped
    equipment_id: str | None = fk("equipment.id", nullable=True)  # where it is now
    created_at: datetime | None = utc(nullable=True)
    updated_at: datetime | None = utc(nullable=True)


class LotGenealogy(SQLModel, table=True):
    """Edges of the genealogy: parent→child lots (split/merge) and batches consumed."""

    __tablename__ = "lot_genealogy"
    id: int | None = Field(default=None, primary_key=True)
    child_lot_id: str = fk("lot.id")
    parent_lot_id: str | None = fk("lot.id", nullable=True)
    batch_id: str | None = fk("material_batch.id", nullable=True)
    relation: str  # consume | split | merge
    quantity: float = 0.0
    ts: datetime = utc()


class Shift(SQLModel, table=True):
    __tablename__ = "shift"
    id: str = Field(primary_key=True)
    name: str
    start: str  # "HH:MM" local plant time (site timezone)
    end: str
    crew: str = ""  # user ids, comma-separated


class User(SQLModel, table=True):
    """Lock-out state of a user; identity and PIN hash come from config.toml [[users]]."""

    __tablename__ = "app_user"
    id: str = Field(primary_key=True)
    name: str
    roles: str = ""  # comma-separated
    failed_attempts: int = 0
    locked: bool = False
    locked_at: datetime | None = utc(nullable=True)
    last_login: datetime | None = utc(nullable=True)


# ---------------------------------------------------------------- plant events


class EquipmentStateInterval(SQLModel, table=True):
    """running | idle | setup | down_planned | down_unplanned | starved | blocked.

    ``end`` is None while the interval is open (the current state).
    """

    __tablename__ = "equipment_state_interval"
    __table_args__ = (Index("ix_esi_equipment_start", "equipment_id", "start"),)
    id: int | None = Field(default=None, primary_key=True)
    equipment_id: str = fk("equipment.id", index=False)
    state: str
    reason_code: str = ""
    start: datetime = utc()
    end: datetime | None = utc(nullable=True)


class QualityMeasurement(SQLModel, table=True):
    __tablename__ = "quality_measurement"
    __table_args__ = (Index("ix_qm_characteristic_ts", "characteristic_id", "ts"),)
    id: int | None = Field(default=None, primary_key=True)
    lot_id: str | None = fk("lot.id", nullable=True)
    equipment_id: str | None = fk("equipment.id", nullable=True)
    characteristic_id: str = fk("quality_characteristic.id", index=False)
    value: float
    lsl: float | None = None
    usl: float | None = None
    in_spec: bool
    ts: datetime = utc()


class Hold(SQLModel, table=True):
    """A non-conformance report holding one or more lots until dispositioned."""

    __tablename__ = "hold"
    id: str = Field(primary_key=True)
    reason: str
    status: str = Field(default="open", index=True)  # open | closed
    disposition: str | None = None  # use_as_is | rework | scrap | return_to_supplier
    created_by: str = ""
    created_at: datetime = utc()
    closed_at: datetime | None = utc(nullable=True)
    recommendation_id: str | None = fk("recommendation.id", nullable=True)


class HoldLot(SQLModel, table=True):
    __tablename__ = "hold_lot"
    hold_id: str = Field(foreign_key="hold.id", primary_key=True)
    lot_id: str = Field(foreign_key="lot.id", primary_key=True, index=True)


class MaintenanceWindow(SQLModel, table=True):
    __tablename__ = "maintenance_window"
    __table_args__ = (Index("ix_mw_line_start", "line_id", "start"),)
    id: str = Field(primary_key=True)  # "MW-<line>-<n:02d>"
    line_id: str = fk("line.id", index=False)
    equipment_id: str | None = fk("equipment.id", nullable=True)
    start: datetime = utc()
    end: datetime = utc()


class WorkOrder(SQLModel, table=True):
    __tablename__ = "work_order"
    id: str = Field(primary_key=True)
    kind: str  # corrective | preventive | predictive
    equipment_id: str = fk("equipment.id")
    fault_mode: str = ""
    description: str = ""
    priority: int = 2
    status: str = Field(default="open", index=True)
    # open | scheduled | in_progress | done | cancelled
    window_id: str | None = fk("maintenance_window.id", nullable=True)
    window_start: datetime | None = utc(nullable=True)
    window_end: datetime | None = utc(nullable=True)
    created_at: datetime = utc()
    completed_at: datetime | None = utc(nullable=True)
    recommendation_id: str | None = fk("recommendation.id", nullable=True)


class Alarm(SQLModel, table=True):
    """ISA-18.2: active/cleared × acked/unacked, shelved until a time, suppressed by design."""

    __tablename__ = "alarm"
    __table_args__ = (Index("ix_alarm_state_priority", "state", "priority"),)
    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(index=True)  # tag id or equipment id
    detector_id: str = ""
    priority: str = "medium"  # low | medium | high | critical
    message: str
    state: str = "active"  # active | cleared
    acked: bool = False
    acked_by: str | None = None
    acked_at: datetime | None = utc(nullable=True)
    shelved_until: datetime | None = utc(nullable=True)
    suppressed: bool = False
    value: float | None = None
    raised_at: datetime = utc()
    cleared_at: datetime | None = utc(nullable=True)


# ---------------------------------------------------------------- closed loop


class Recommendation(SQLModel, table=True):
    __tablename__ = "recommendation"
    __table_args__ = (Index("ix_rec_problem_status", "problem_key", "status"),)
    id: str = Field(primary_key=True)
    decision_class: str  # lot_hold | lot_release | work_order | setpoint | replan | replenish
    target: str  # the lot, equipment, tag or line acted on
    action: str
    params: str = "{}"  # JSON
    rationale: str = ""
    evidence: str = "{}"  # JSON: signals, context, model contributions
    confidence: float = 0.0
    expected_impact: str = ""
    required_role: str = ""
    status: str = Field(default="proposed", index=True)
    # proposed | approved | rejected | expired | superseded | executing | executed | failed
    problem_key: str  # same problem → same key: dedupe and supersede
    created_at: datetime = utc()
    expires_at: datetime | None = utc(nullable=True)
    updated_at: datetime | None = utc(nullable=True)
    superseded_by: str | None = None


class Decision(SQLModel, table=True):
    """A verdict on a recommendation with its electronic signature."""

    __tablename__ = "decision"
    id: int | None = Field(default=None, primary_key=True)
    recommendation_id: str = fk("recommendation.id")
    user_id: str  # a user id, or "policy:auto"
    verdict: str  # approved | rejected
    reason: str = ""
    comment: str = ""
    signed_name: str = ""  # printed name
    signed_at: datetime = utc()
    meaning: str = ""  # e.g. "approved lot hold"
    record_hash: str = ""  # SHA-256 of the signed recommendation record


class Action(SQLModel, table=True):
    """The outbox: at most one row per idempotency key, executed exactly once."""

    __tablename__ = "action"
    id: int | None = Field(default=None, primary_key=True)
    recommendation_id: str | None = fk("recommendation.id", nullable=True)
    kind: str
    params: str = "{}"  # JSON
    idempotency_key: str = Field(unique=True)
    status: str = Field(default="pending", index=True)  # pending | running | done | failed
    attempts: int = 0
    result: str = ""  # JSON or message
    created_at: datetime = utc()
    started_at: datetime | None = utc(nullable=True)
    finished_at: datetime | None = utc(nullable=True)


class Outcome(SQLModel, table=True):
    __tablename__ = "outcome"
    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="action.id", index=True)
    window_start: datetime = utc()
    window_end: datetime = utc()
    effect: str = "{}"  # JSON: measured before/after
    label: str = ""  # e.g. effective | ineffective | harmful
    recorded_at: datetime = utc()


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_version"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_model_name_version"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    version: int
    status: str = "challenger"  # challenger | champion | retired
    train_start: datetime | None = utc(nullable=True)
    train_end: datetime | None = utc(nullable=True)
    features: str = "[]"  # JSON
    metrics: str = "{}"  # JSON
    path: str = ""
    created_at: datetime = utc()
    promoted_at: datetime | None = utc(nullable=True)


class Plan(SQLModel, table=True):
    __tablename__ = "plan"
    id: str = Field(primary_key=True)
    created_at: datetime = utc()
    status: str = Field(default="proposed", index=True)  # proposed | active | superseded | rejected
    objective: str = ""
    reason: str = ""
    metrics: str = "{}"  # JSON


class PlanItem(SQLModel, table=True):
    __tablename__ = "plan_item"
    id: int | None = Field(default=None, primary_key=True)
    plan_id: str = fk("plan.id")
    seq: int  # order on its equipment
    operation_id: str = fk("operation.id")
    equipment_id: str = fk("equipment.id", index=False)
    start: datetime = utc()
    end: datetime = utc()
    setup_min: float = 0.0


class AuditEntry(SQLModel, table=True):
    """Append-only, hash-chained; the database refuses UPDATE/DELETE (see core.audit)."""

    __tablename__ = "audit_entry"
    seq: int | None = Field(default=None, primary_key=True)
    ts: datetime = utc(index=True)
    actor: str
    action: str = Field(index=True)
    entity: str = ""
    entity_id: str = ""
    detail: str = "{}"  # JSON text
    prev_hash: str
    hash: str


AUDIT_GUARD_SQL = (
    "CREATE TRIGGER IF NOT EXISTS audit_entry_no_update BEFORE UPDATE ON audit_entry "
    "BEGIN SELECT RAISE(ABORT, 'audit_entry is append-only: UPDATE refused'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_entry_no_delete BEFORE DELETE ON audit_entry "
    "BEGIN SELECT RAISE(ABORT, 'audit_entry is append-only: DELETE refused'); END",
)
# PostgreSQL (14+ for CREATE OR REPLACE TRIGGER): one function refusing UPDATE, DELETE
# and TRUNCATE; the loopline_writer role also lacks those privileges (core.store.roles)
AUDIT_GUARD_PG_SQL = (
    "CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', "
    "MESSAGE = 'audit_entry is append-only: ' || TG_OP || ' refused'; END $$",
    "CREATE OR REPLACE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_entry "
    "FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()",
    "CREATE OR REPLACE TRIGGER audit_entry_no_delete BEFORE DELETE ON audit_entry "
    "FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()",
    "CREATE OR REPLACE TRIGGER audit_entry_no_truncate BEFORE TRUNCATE ON audit_entry "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_entry_append_only()",
)


def audit_guard_sql(dialect: str) -> tuple[str, ...]:
    """The statements that make the database refuse to rewrite the audit chain."""
    return {"sqlite": AUDIT_GUARD_SQL, "postgresql": AUDIT_GUARD_PG_SQL}.get(dialect, ())


for _dialect in ("sqlite", "postgresql"):  # the database itself refuses to rewrite history
    for _stmt in audit_guard_sql(_dialect):
        event.listen(AuditEntry.__table__, "after_create",  # type: ignore[attr-defined]
                     DDL(_stmt.replace("%", "%%")).execute_if(dialect=_dialect))


# ---------------------------------------------------------------- hot data


class SampleTag(SQLModel, table=True):
    """A tag's number in the history tables: the tag id string is stored once, here.

    ``scope`` is the machine whose context intervals apply to the tag's samples (the
    equipment the contextualizer stamped on it); None for plant-level tags.
    """

    __tablename__ = "sample_tag"
    num: int | None = Field(default=None, primary_key=True)
    tag_id: str = Field(unique=True)
    scope: str | None = None


class SampleReason(SQLModel, table=True):
    """Reason texts ("timeout", "exception code 2") by code; samples carry the code."""

    __tablename__ = "sample_reason"
    code: int | None = Field(default=None, primary_key=True)
    text: str = Field(unique=True)


class Sample(SQLModel, table=True):
    """Recent narrow samples in arrival order: the open chunk of every tag.

    Append-only rowid table with no secondary index, so an insert touches one place
    of one b-tree (the write path). ``ts`` is microseconds since the epoch, UTC;
    ``value`` is None when Bad (or a text sample, see ``sample_text``); ``reason`` is a
    ``sample_reason`` code. The store writer compacts these rows into ``sample_chunk``
    in the background. AUTOINCREMENT: ids never repeat after compaction empties the table
    (rollup and spill marks refer to them).
    """

    __tablename__ = "sample"
    __table_args__ = {"sqlite_autoincrement": True}
    id: int | None = Field(default=None, primary_key=True)
    tag: int
    ts: int = Field(sa_type=BigInteger)
    value: float | None = None
    quality: int = Field(default=0, sa_type=SmallInteger)  # core.samples.Quality
    reason: int | None = None


class SampleChunk(SQLModel, table=True):
    """One tag's samples of (part of) one hour, as a compressed block (core.store.chunks).

    Written by compaction and never changed: a late sample makes another chunk of the
    same hour. ``seq`` orders chunks and lets the archiver move an exact set.
    """

    __tablename__ = "sample_chunk"
    __table_args__ = (Index("ix_sample_chunk_tag_t1", "tag", "t1"),
                      {"sqlite_autoincrement": True})
    seq: int | None = Field(default=None, primary_key=True)
    tag: int
    t0: int = Field(sa_type=BigInteger)  # first sample time (µs since epoch, UTC)
    t1: int = Field(sa_type=BigInteger)  # last sample time
    n: int
    data: bytes = Field(sa_type=LargeBinary)


class SampleText(SQLModel, table=True):
    """Text-valued samples (string tags: lot ids, commands), rare beside numbers."""

    __tablename__ = "sample_text"
    __table_args__ = (Index("ix_sample_text_tag_ts", "tag", "ts"),)
    id: int | None = Field(default=None, primary_key=True)
    tag: int
    ts: int = Field(sa_type=BigInteger)
    text: str | None = None
    quality: int = Field(default=0, sa_type=SmallInteger)
    reason: int | None = None


class ContextInterval(SQLModel, table=True):
    """The production context of one machine from ``valid_from`` until ``valid_to``.

    Context is piecewise constant, so it is stored once per change instead of on every
    sample, and joined to samples when they are read (core.history). ``valid_to`` is None
    while the interval is open. Times are µs since the epoch, UTC, like ``sample.ts``.
    """

    __tablename__ = "context_interval"
    __table_args__ = (Index("ix_ctx_scope_from", "scope", "valid_from"),)
    id: int | None = Field(default=None, primary_key=True)
    scope: str  # the machine (equipment id) the interval belongs to
    equipment_id: str | None = None
    line_id: str | None = None
    order_id: str | None = None
    lot_id: str | None = None
    recipe_id: str | None = None
    batch_id: str | None = None
    shift_id: str | None = None
    operator_id: str | None = None
    valid_from: int = Field(sa_type=BigInteger)
    valid_to: int | None = Field(default=None, sa_type=BigInteger)


class SampleRollup(SQLModel, table=True):
    """Per-tag, per-minute aggregates of Good samples (trends over days without the hot rows)."""

    __tablename__ = "sample_rollup"
    tag_id: str = Field(primary_key=True)
    minute: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    count: int = 0
    good_share: float = 1.0


# ---------------------------------------------------------------- plain tables
# Core tables (no model class) that the ingest path and dispatch write with plain SQL;
# created by the migrations like the models, on either engine.

PRODUCTION_COUNT = Table(
    "production_count", SQLModel.metadata,
    Column("id", Integer, primary_key=True), Column("equipment_id", String, nullable=False),
    Column("line_id", String), Column("lot_id", String), Column("order_id", String),
    Column("operation_id", String), Column("shift_id", String),
    Column("ts", UTCDateTime, nullable=False),  # start of the minute the pieces were counted in
    Column("good", Integer, nullable=False, server_default="0"),
    Column("scrap", Integer, nullable=False, server_default="0"),
    Index("ix_production_count_eq_ts", "equipment_id", "ts"),
    Index("ix_production_count_lot", "lot_id"),
)

DISPATCH = Table(
    "dispatch", SQLModel.metadata,
    Column("equipment_id", String, primary_key=True),
    Column("order_id", String, nullable=False), Column("operation_id", String),
    Column("lot_id", String), Column("batch_id", String), Column("operator_id", String),
    Column("status", String, nullable=False),  # running | paused
    Column("since", UTCDateTime, nullable=False),
    Column("updated_by", String, nullable=False),
)


class InspectionRow(SQLModel, table=True):
    """One unit a vision station inspected, with the context of its machine at ``ts``.

    Context ids are stamped at ingest (the contextualizer's view when the result
    arrived), so a report never joins intervals. ``ts`` is µs since the epoch, UTC.
    """

    __tablename__ = "inspection"
    __table_args__ = (Index("ix_inspection_ts", "ts"),
                      Index("ix_inspection_eq_ts", "equipment_id", "ts"),
                      Index("ix_inspection_lot", "lot_id"))
    id: int | None = Field(default=None, primary_key=True)
    ts: int = Field(sa_type=BigInteger)
    equipment_id: str
    station_tag: str  # the vision tag's id
    unit_id: str | None = None
    passed: bool
    image_ref: str | None = None
    line_id: str | None = None
    order_id: str | None = None
    operation_id: str | None = None
    lot_id: str | None = None
    recipe_id: str | None = None
    batch_id: str | None = None
    shift_id: str | None = None
    operator_id: str | None = None


class InspectionDefectRow(SQLModel, table=True):
    """A defect class the station found on an inspected unit (several per unit)."""

    __tablename__ = "inspection_defect"
    id: int | None = Field(default=None, primary_key=True)
    inspection_id: int = Field(foreign_key="inspection.id", index=True)
    defect_class: str = Field(index=True)
    confidence: float
