"""The shape of config.toml, validated strictly so a typo never passes silently.

Every model forbids unknown keys. Tag templates keep the file short: an equipment
names a template and the loader expands its tags with the equipment's placeholders
(see ``core.config.expand``). Addresses stay in the config, never in driver code.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=64)]
Name = Annotated[str, Field(min_length=1, pattern=r"\S", max_length=200)]  # not blank
PathText = Annotated[str, Field(min_length=1, pattern=r"\S")]  # a file or folder, not blank
# Bounds that keep a number meaningful (a day, a week, a year): values past them are typos
# or overflows (1e999, 2**64), never a plant's setting.
DAY_S = 86_400.0
Seconds = Annotated[float, Field(ge=0, le=7 * DAY_S)]
PositiveSeconds = Annotated[float, Field(gt=0, le=7 * DAY_S)]
Millis = Annotated[int, Field(le=3_600_000)]

# Physics models in the twin and feature families in ml/ (sim/physics.py TYPES); "generic"
# is a machine loopline reads without either.
EQUIPMENT_TYPES = ("lathe", "mill", "grinder", "washer", "dryer", "molder", "extruder", "oven",
                   "press", "packer", "generic")
EquipmentType = Literal["lathe", "mill", "grinder", "washer", "dryer", "molder", "extruder",
                        "oven", "press", "packer", "generic"]

ROLES = ("operator", "shift_lead", "maintenance", "quality", "admin")
Role = Literal["operator", "shift_lead", "maintenance", "quality", "admin"]

DECISION_CLASSES = ("lot_hold", "lot_release", "work_order", "setpoint", "replan", "replenish",
                    "retrain", "command")
DecisionClass = Literal["lot_hold", "lot_release", "work_order", "setpoint", "replan", "replenish",
                        "retrain", "command"]  # command: a machine command a person requested

AutonomyLevel = Literal["advise", "approve", "auto"]

# where a machine's production context (order, lot, operator...) comes from: its own
# context tags, the MES dispatch (``loopline dispatch``), or the tags with dispatch
# filling in while the device reports no order or lot
ContextSource = Literal["device", "dispatch", "device_then_dispatch"]

TagKind = Literal[
    "signal", "counter", "state", "setpoint", "context", "command", "clock", "quality",
    "vision",
]
DataType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "float32", "float64", "string"
]
# Register layouts as engineers name them: A is the most significant byte. Each name is a
# (word order, byte order) pair; "big"/"little" stay as the older spelling of the orders.
LAYOUTS: dict[str, tuple[str, str]] = {
    "ABCD": ("big", "big"),
    "CDAB": ("little", "big"),
    "BADC": ("big", "little"),
    "DCBA": ("little", "little"),
}
RegisterOrder = Literal["big", "little", "ABCD", "CDAB", "BADC", "DCBA"]


class Strict(BaseModel):
    # allow_inf_nan=False: inf, nan and 1e999 (TOML reads it as inf) are never a setting
    model_config = ConfigDict(extra="forbid", frozen=False, validate_default=True,
                              allow_inf_nan=False)


class At(ValueError):
    """A cross-field problem with the key it is about, so the loader can give its line."""

    def __init__(self, msg: str, *loc: str | int) -> None:
        super().__init__(msg)
        self.loc = loc


class Site(Strict):
    id: Identifier
    name: Name
    timezone: str = "UTC"


class Area(Strict):
    id: Identifier
    name: Name


class Limits(Strict):
    """Alarm limits in engineering units; any may be left out."""

    lolo: float | None = None
    lo: float | None = None
    hi: float | None = None
    hihi: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Limits:
        seq = [v for v in (self.lolo, self.lo, self.hi, self.hihi) if v is not None]
        if seq != sorted(seq):
            raise ValueError("limits must satisfy lolo <= lo <= hi <= hihi")
        return self


class HistoryFilter(Strict):
    """Storage compression of one tag (core.ingest.deadband): which samples history keeps.

    Off unless set. ``absolute``/``swinging_door``: ``value`` in engineering units;
    ``percent``: ``value`` % of the last stored value. Error bound: a reader holding the
    last stored value (absolute, percent) or interpolating between stored points
    (swinging door) is never further than the band from any dropped sample. Quality
    changes, non-Good samples and text are always stored, and a sample at least every
    ``max_interval_s``. Leave it off for quality characteristics and counters.
    """

    kind: Literal["absolute", "percent", "swinging_door"] = "absolute"
    value: float = Field(gt=0)
    max_interval_s: float = Field(default=600.0, gt=0)


class VisionMap(Strict):
    """How a vision station's per-unit result is laid out (``kind = "vision"`` tags).

    JSON (an OPC UA string node, an MQTT ``json:TOPIC`` message): dotted paths into the
    document; ``result`` is pass when it is true or one of ``pass_values``, and
    ``defects`` is a list of objects with ``class_key``/``confidence_key`` (or of plain
    class names). Modbus: from the tag's address, a unit counter (uint16), a result
    code (0 pass, else fail), a defect bitmask (bit i = ``classes[i]``) and one
    confidence register per class (× ``confidence_scale``): 3 + len(classes) registers.
    A new unit is a new unit id / counter value; counter 0 (or an empty id) is "no unit
    inspected yet". A reject moves one unit of the lot from good to scrap at the tag's
    machine (the station sits at its outfeed).
    """

    classes: list[Identifier] = Field(default_factory=list, max_length=16)
    unit_path: str = Field(default="unit", min_length=1)
    counter_path: str | None = None  # a unit counter in the JSON (restarts recognised)
    result_path: str = Field(default="result", min_length=1)
    defects_path: str = Field(default="defects", min_length=1)
    class_key: str = Field(default="class", min_length=1)
    confidence_key: str = Field(default="confidence", min_length=1)
    image_path: str | None = "image"
    pass_values: list[str] = Field(default_factory=lambda: ["pass", "ok", "good", "true", "1"])
    confidence_scale: float = Field(default=0.01, gt=0, le=1)
    min_confidence: float = Field(default=0.0, ge=0, le=1)  # defects below it are ignored

    @model_validator(mode="after")
    def _unique(self) -> VisionMap:
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("vision.classes names a class twice")
        return self


class Tag(Strict):
    """One signal of one piece of equipment, as the driver finds it.

    ``address`` is an OPC UA node id (``ns=2;s=A.A-LATHE1.VibrationRMS``, or
    ``nsu=urn:vendor:plc;s=...`` resolved against the server's namespace table) or a
    Modbus address: ``hr:100`` / ``ir:100`` (registers, 0-based), ``hr:100.3`` (bit 3
    of a status word), ``co:5`` / ``di:5`` (coils, discrete inputs), or Modicon
    notation ``40101`` / ``30001`` / ``00001`` / ``10001`` (1-based: 40101 is hr:100).
    Templates may use ``{line}``, ``{equipment}`` and ``{base+N}`` (register_base + N).
    ``word_order`` takes a layout name (ABCD, CDAB, BADC, DCBA), which sets both orders.
    """

    name: Identifier
    address: str = Field(min_length=1)
    kind: TagKind = "signal"
    data_type: DataType = "float64"
    unit: str = ""
    description: str = ""
    scale: float = Field(default=1.0, ge=-1e12, le=1e12)
    offset: float = Field(default=0.0, ge=-1e12, le=1e12)
    word_order: RegisterOrder = "big"
    byte_order: RegisterOrder = "big"
    limits: Limits | None = None
    writable: bool = False
    deadband: float = Field(default=0.0, ge=0)  # OPC UA subscription deadband (the server's)
    history: HistoryFilter | None = None  # storage compression (ours), off by default
    poll_group: Identifier = "default"
    key: bool = False  # the signal shown as the equipment's sparkline
    id_format: str | None = None  # numeric context value -> id, e.g. "L-{:06d}"
    # a counter's rollover modulus when it is not the data type's (a PLC counting 0..9999)
    rollover: int | None = Field(default=None, ge=2)
    vision: VisionMap | None = None  # the result layout of a ``kind = "vision"`` tag

    @model_validator(mode="after")
    def _vision(self) -> Tag:
        if self.kind == "vision":
            if self.vision is None:
                self.vision = VisionMap()
            if "data_type" not in self.model_fields_set:
                self.data_type = "string"
            if self.data_type != "string":
                raise ValueError("a vision tag has data_type 'string' (its decoded result)")
            if self.writable:
                raise ValueError("a vision tag is read-only")
        elif self.vision is not None:
            raise ValueError(f"vision settings on a {self.kind!r} tag: set kind = 'vision'")
        return self

    @model_validator(mode="after")
    def _layout(self) -> Tag:
        """A layout name sets both orders; stored as the (word, byte) pair drivers use."""
        given = {k: getattr(self, k) for k in ("word_order", "byte_order")
                 if k in self.model_fields_set}
        named = {k: v for k, v in given.items() if v in LAYOUTS}
        if not named:
            return self
        layouts = {LAYOUTS[v] for v in named.values()}
        if len(layouts) > 1:
            raise ValueError(f"word_order and byte_order name different layouts: {named}")
        word, byte = layouts.pop()
        for k, v in given.items():
            if v not in LAYOUTS and v != (word if k == "word_order" else byte):
                layout = next(iter(named.values()))
                raise ValueError(f"{k} = {v!r} contradicts the layout {layout!r}; "
                                 "give the layout alone")
        self.word_order, self.byte_order = word, byte  # type: ignore[assignment]
        return self


class Equipment(Strict):
    id: Identifier
    name: Name
    type: EquipmentType  # physics model in the twin and feature family in ml/
    template: Identifier | None = None  # tag template; defaults to ``type``
    driver: Identifier | None = None  # defaults to the line's driver
    register_base: int = Field(default=0, ge=0, le=65535)
    unit_id: int | None = Field(default=None, ge=0, le=255)
    ideal_cycle_s: float = Field(gt=0, le=DAY_S)
    context_source: ContextSource | None = None  # defaults to the line's
    tags: list[Tag] = Field(default_factory=list)


class Line(Strict):
    id: Identifier
    name: Name
    area: Identifier
    driver: Identifier
    context_source: ContextSource = "device"
    equipment: list[Equipment] = Field(min_length=1)


class TagTemplate(Strict):
    extends: Identifier | None = None  # another template whose tags come first
    tags: list[Tag] = Field(default_factory=list)


class OpcUaDriver(Strict):
    kind: Literal["opcua"]
    endpoint: str = Field(pattern=r"^opc\.tcp://")
    security_policy: Literal["None", "Basic256Sha256"] = "None"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: str | None = None
    private_key: str | None = None
    server_certificate: str | None = None
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    publishing_interval_ms: Millis = Field(default=250, ge=10)
    sampling_interval_ms: Millis = Field(default=100, ge=0)
    queue_size: int = Field(default=10, ge=1, le=10_000)
    deadband: float = Field(default=0.0, ge=0)
    max_items_per_subscription: int = Field(default=1000, ge=1, le=100_000)
    sessions: int = Field(default=1, ge=1, le=16)
    timeout_s: float = Field(default=4.0, gt=0, le=3600)
    # backoff after a loss: a fast first retry, doubling up to the cap; the cap bounds
    # how long after a server's return the data resumes
    reconnect_min_s: float = Field(default=0.1, gt=0, le=3600)
    reconnect_max_s: float = Field(default=1.0, gt=0, le=3600)
    # a refused identity or certificate is tried this often, then the driver stops (a
    # server's lock-out policy counts failed logins)
    auth_attempts: int = Field(default=3, ge=1, le=20)

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaDriver:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        if (self.security_policy == "None") != (self.security_mode == "None"):
            raise ValueError("security_policy and security_mode must both be None or both set")
        if (self.password or self.password_env) and self.security_mode != "SignAndEncrypt":
            raise ValueError(
                "a password is only sent over an encrypted channel: "
                "set security_mode = 'SignAndEncrypt' or drop the password"
            )
        return self


class PollGroup(Strict):
    name: Identifier
    interval_ms: Millis = Field(ge=10)


class ModbusDriver(Strict):
    kind: Literal["modbus"]
    host: Name
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    timeout_s: float = Field(default=1.0, gt=0, le=3600)
    poll_interval_ms: Millis = Field(default=500, ge=10)
    poll_groups: list[PollGroup] = Field(default_factory=list)
    max_block: int = Field(default=125, ge=1, le=125)
    max_gap: int = Field(default=8, ge=0, le=124)  # unused registers a block may bridge
    reconnect_min_s: float = Field(default=0.1, gt=0, le=3600)
    reconnect_max_s: float = Field(default=1.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _consistent(self) -> ModbusDriver:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        return self


class MqttTls(Strict):
    """TLS to the broker; ``ca`` empty uses the system's trust store."""

    ca: str | None = None
    cert: str | None = None  # client certificate (mutual TLS), with key
    key: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> MqttTls:
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls.cert and tls.key go together")
        return self


class MqttDriver(Strict):
    """An MQTT broker; tags are ``spb:GROUP/EDGE[/DEVICE]#METRIC`` (Sparkplug B)
    or ``json:TOPIC[#PATH]`` (a value in a plain JSON message)."""

    kind: Literal["mqtt"]
    host: str
    port: int = Field(default=1883, ge=1, le=65535)
    protocol: Literal["3.1.1", "5"] = "5"
    client_id: str | None = Field(default=None, max_length=128)  # default loopline-<driver id>
    tls: MqttTls | None = None
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    qos: Literal[0, 1] = 1
    sparkplug_host_id: Identifier | None = None  # publish spBv1.0/STATE/<id> as a host app
    rebirth_on_gap: bool = True  # NCMD Node Control/Rebirth on a sequence gap or unknown node
    rebirth_min_interval_s: float = Field(default=5.0, ge=0)
    json_write_topic: str | None = None  # e.g. "{topic}/set"; unset: JSON tags are read-only
    json_timestamp_path: str | None = None  # where a JSON message carries its time
    write_timeout_s: float = Field(default=5.0, gt=0)  # wait for the read-back
    # refused credentials or an untrusted broker certificate are tried this often, then
    # the driver stops with the reason (brokers may ban clients that keep failing)
    auth_attempts: int = Field(default=3, ge=1, le=20)
    timeout_s: float = Field(default=5.0, gt=0)
    reconnect_min_s: float = Field(default=0.1, gt=0)  # backoff as for the other drivers
    reconnect_max_s: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _password_over_tls(self) -> MqttDriver:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        if (self.password or self.password_env) and self.tls is None:
            raise ValueError("a password is only sent over TLS: add [drivers.<id>.tls]")
        if self.password and self.password_env:
            raise ValueError("give password or password_env, not both")
        return self


Driver = Annotated[OpcUaDriver | ModbusDriver | MqttDriver, Field(discriminator="kind")]


class User(Strict):
    id: Identifier
    name: Name
    roles: list[Role] = Field(min_length=1)
    pin_hash: str = Field(pattern=r"^scrypt\$\d+\$\d+\$\d+\$[0-9a-f]+\$[0-9a-f]+$")


class Auth(Strict):
    max_failed_attempts: int = Field(default=5, ge=1, le=100)
    signature_idle_timeout_s: int = Field(default=300, ge=10, le=int(DAY_S))
    two_person_setpoint: bool = False
    sign_dispatch: bool = False  # dispatch start/pause/resume/complete need the PIN
    permissions: dict[Role, list[DecisionClass]] = Field(
        default_factory=lambda: {
            "operator": [],
            "shift_lead": ["replan", "replenish", "setpoint", "command"],
            "maintenance": ["work_order", "command"],
            "quality": ["lot_hold", "lot_release", "setpoint"],
            "admin": list(DECISION_CLASSES),
        }
    )


class Autonomy(Strict):
    lot_hold: AutonomyLevel = "approve"
    lot_release: AutonomyLevel = "approve"
    work_order: AutonomyLevel = "approve"
    setpoint: AutonomyLevel = "approve"
    replan: AutonomyLevel = "advise"
    replenish: AutonomyLevel = "auto"
    retrain: AutonomyLevel = "approve"  # a drifted model's retraining (ML drift check)
    command: AutonomyLevel = "approve"  # machine commands people request (core.requests)
    undo_window_s: int = Field(default=900, ge=0, le=int(7 * DAY_S))
    # classes whose person-initiated requests need another person to approve them
    four_eyes: list[DecisionClass] = Field(default_factory=list)


class Detector(Strict):
    id: Identifier
    kind: Literal["limit", "spc", "state", "stale", "ml_score", "material", "deviation"]
    tags: list[str] = Field(default_factory=list)  # glob patterns: "*.bearing_temp"
    # for deviation: "baseline" (own level per recipe) or a setpoint tag name ("temp_sp")
    reference: str | None = None
    characteristic: str | None = None  # for spc
    model: Identifier | None = None  # for ml_score
    threshold: float | None = Field(default=None, ge=-1e9, le=1e9)
    hysteresis: float = Field(default=0.0, ge=0, le=1e9)
    on_delay_s: Seconds = 0.0
    stale_after_s: PositiveSeconds | None = None
    priority: Literal["low", "medium", "high", "critical"] = "medium"
    enabled: bool = True

    @model_validator(mode="after")
    def _deviation(self) -> Detector:
        if self.kind == "deviation" and (not self.reference or not self.threshold):
            raise ValueError("a deviation detector needs reference and a non-zero threshold")
        return self


class MlJob(Strict):
    name: Identifier
    model: Literal["failure", "rul", "scrap", "quality", "anomaly"]
    score_every_s: float = Field(default=30.0, gt=0, le=DAY_S)
    retrain_cron: Name = "0 2 * * *"
    horizon_h: float = Field(default=8.0, gt=0, le=24 * 90)
    window_min: float = Field(default=60.0, gt=0, le=60 * 24 * 30)
    enabled: bool = True


class Ml(Strict):
    models_dir: PathText = "data/models"
    jobs: list[MlJob] = Field(default_factory=list)


class Store(Strict):
    path: PathText = "data/loopline.db"
    # overrides path: postgresql+psycopg://user@host:5432/db?sslmode=verify-full&...
    url: PathText | None = None
    # the environment variable holding the URL's password (never in the file)
    password_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                       max_length=128)] | None = None
    archive_dir: PathText = "data/history"
    spill_dir: PathText = "data/spill"
    hot_window_h: float = Field(default=24.0, gt=0, le=24 * 366)
    flush_ms: int = Field(default=200, ge=10, le=5000)
    batch_rows: int = Field(default=5000, ge=1, le=1_000_000)
    queue_max: int = Field(default=200_000, ge=1000, le=100_000_000)


class Simulator(Strict):
    enabled: bool = True
    host: Name = "127.0.0.1"
    opcua_port: int = Field(default=4840, ge=1, le=65535)
    modbus_port: int = Field(default=5020, ge=1, le=65535)
    seed: int = Field(default=42, ge=0, le=2**32 - 1)  # numpy's seed range
    speed: float = Field(default=60.0, ge=1, le=3600)
    start: str | None = None  # ISO-8601 UTC twin start; default: now
    random_faults_per_day: float = Field(default=0.5, ge=0, le=1000)
    startup_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    scale: int = Field(default=1, ge=1, le=200)
    opcua_security: bool = False
    opcua_username: str | None = None
    opcua_password: str | None = None
    opcua_cert_dir: PathText = "data/pki/twin"  # generated server certificate and key


class Console(Strict):
    theme: Literal["dark", "light"] = "dark"
    keymap: dict[str, str] = Field(default_factory=dict)  # binding id -> keys
    refresh_ms: int = Field(default=500, ge=50, le=60_000)


class Config(Strict):
    site: Site
    areas: list[Area] = Field(min_length=1)
    lines: list[Line] = Field(min_length=1)
    templates: dict[Identifier, TagTemplate] = Field(default_factory=dict)
    plant_tags: list[PlantTag] = Field(default_factory=list)
    drivers: dict[Identifier, Driver]
    users: list[User] = Field(min_length=1)
    auth: Auth = Field(default_factory=Auth)
    autonomy: Autonomy = Field(default_factory=Autonomy)
    detectors: list[Detector] = Field(default_factory=list)
    ml: Ml = Field(default_factory=Ml)
    store: Store = Field(default_factory=Store)
    simulator: Simulator = Field(default_factory=Simulator)
    console: Console = Field(default_factory=Console)
    master_data: PathText = "data/master.toml"

    @model_validator(mode="after")
    def _references(self) -> Config:
        area_ids = {a.id for a in self.areas}
        for kind, items in (("areas", self.areas), ("lines", self.lines),
                            ("users", self.users), ("detectors", self.detectors),
                            ("ml.jobs", self.ml.jobs)):
            first: dict[str, int] = {}
            for i, it in enumerate(items):
                key = getattr(it, "id", None) or getattr(it, "name", "")
                if key in first:
                    raise At(f"{kind} id {key!r} is used twice (first at "
                             f"{kind}[{first[key]}])", *kind.split("."), i,
                             "id" if hasattr(it, "id") else "name")
                first[key] = i
        seen_eq: dict[str, str] = {}
        for li, line in enumerate(self.lines):
            if line.area not in area_ids:
                raise At(f"line {line.id!r} names unknown area {line.area!r}",
                         "lines", li, "area")
            if line.driver not in self.drivers:
                raise At(f"line {line.id!r} names unknown driver {line.driver!r}",
                         "lines", li, "driver")
            tag_names: set[str] = set()
            for ei, eq in enumerate(line.equipment):
                if eq.id in seen_eq:
                    raise At(f"equipment id {eq.id!r} is used twice (first on production line "
                             f"{seen_eq[eq.id]})", "lines", li, "equipment", ei, "id")
                seen_eq[eq.id] = line.id
                if eq.driver and eq.driver not in self.drivers:
                    raise At(f"equipment {eq.id!r} names unknown driver {eq.driver!r}",
                             "lines", li, "equipment", ei, "driver")
                tag_names.clear()
                for ti, t in enumerate(eq.tags):
                    if t.name in tag_names:
                        raise At(f"equipment {eq.id!r} has tag {t.name!r} twice",
                                 "lines", li, "equipment", ei, "tags", ti, "name")
                    tag_names.add(t.name)
                tpl = eq.template or eq.type
                if not eq.tags and tpl not in self.templates:
                    raise At(
                        f"equipment {eq.id!r} has no tags and no template {tpl!r} "
                        f"(templates: {', '.join(sorted(self.templates)) or 'none'})",
                        "lines", li, "equipment", ei, "template" if eq.template else "type"
                    )
        for name, tpl in self.templates.items():
            seen_tpl = {name}
            while tpl.extends:
                if tpl.extends not in self.templates:
                    raise ValueError(f"template {name!r} extends unknown {tpl.extends!r}")
                if tpl.extends in seen_tpl:
                    raise ValueError(f"template {name!r} extends itself in a cycle")
                seen_tpl.add(tpl.extends)
                tpl = self.templates[tpl.extends]
        for i, pt in enumerate(self.plant_tags):
            if pt.driver not in self.drivers:
                raise At(f"plant tag {pt.name!r} names unknown driver {pt.driver!r}",
                         "plant_tags", i, "driver")
        return self


class PlantTag(Tag):
    """A tag not bound to equipment, e.g. the twin's clock."""

    driver: Identifier


Config.model_rebuild()
