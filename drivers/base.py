"""The one interface every driver offers the runtime, plus what they all share.

A driver turns a protocol into lists of ``Sample`` handed to a sink. The sink is
called on the event loop from protocol callbacks, so it must only enqueue; the
driver never does slow work there either. Connection state, counters and per-tag
last-update times live here so the engine and the UI see every driver the same way.
"""

from __future__ import annotations

import logging
import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from core.samples import Quality, Sample, Value

if TYPE_CHECKING:
    from core.config.loader import LoadedConfig, ResolvedTag
    from core.config.schema import ModbusDriver as ModbusDriverCfg
    from core.config.schema import OpcUaDriver as OpcUaDriverCfg

log = logging.getLogger("loopline.drivers")

Sink = Callable[[list[Sample]], object]  # return value ignored
StateListener = Callable[["ConnectionState"], None]

CONNECTION_LOST = "connection lost"


class DriverError(Exception):
    """A driver problem a person can act on; ``str()`` is the message."""


class DriverConfigError(DriverError):
    """The config asks for something this driver cannot do (bad address, type)."""


class DriverAuthError(DriverError):
    """The server refused who we are (credentials, certificate): retrying cannot fix it."""


class ConnState(StrEnum):
    """connecting: never connected yet; reconnecting: lost, retrying with backoff;
    down: stopped, or a problem retrying cannot fix (config, credentials; see last_error)."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """Where a driver stands and since when; ``last_error`` is the *current* problem
    (None once connected: the history of errors is in ``DriverStats``)."""

    state: ConnState
    since: datetime
    last_error: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "state": self.state.value,
            "since": self.since.isoformat(),
            "last_error": self.last_error,
        }


@dataclass(slots=True)
class DriverStats:
    values_received: int = 0  # every sample handed to the sink, markers included
    bad_values: int = 0
    reconnects: int = 0  # successful re-connections after a loss
    errors: int = 0  # failed reads, failed connects, sink errors
    writes: int = 0
    write_failures: int = 0
    last_failure: str | None = None  # the newest of ``errors``, so a count has a reason
    last_failure_at: str | None = None  # its UTC time (ISO)

    def note_error(self, message: str) -> None:
        """Count one error and keep its message as the newest."""
        self.errors += 1
        self.last_failure = message
        self.last_failure_at = datetime.now(UTC).isoformat()

    def as_dict(self) -> dict[str, int | str | None]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Outcome of a write with read-back; ``ok`` only when the device holds the value."""

    tag_id: str
    ok: bool
    requested: Value
    read_back: Value = None
    error: str | None = None
    mismatch: bool = False  # written, but the device reports something else


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Backoff:
    """Capped exponential backoff with a fast first retry: min, 2·min, 4·min … max.

    The cap is what bounds the time from a server's return to data flowing again,
    so it stays small (``reconnect_max_s``, 1 s by default): a retry is one TCP
    connect, which costs a server nothing.
    """

    def __init__(self, min_s: float, max_s: float) -> None:
        self.min_s, self.max_s = min_s, max(max_s, min_s)
        self._next = min_s

    def next(self) -> float:
        d = self._next
        self._next = min(d * 2, self.max_s)
        return d

    def reset(self) -> None:
        self._next = self.min_s


class Driver(ABC):
    """Base class: subclasses implement the protocol, this class keeps the books."""

    kind: ClassVar[str] = ""

    def __init__(self, driver_id: str, tags: Sequence[ResolvedTag]) -> None:
        self.id = driver_id
        # stamps what the protocol does not: Modbus polls, outage markers. The runtime sets
        # it to the plant clock so a sped-up twin's history stays in one time base.
        self.now: Callable[[], datetime] = _utcnow
        self.tags: dict[str, ResolvedTag] = {t.id: t for t in tags}
        self.stats = DriverStats()
        self._state = ConnectionState(ConnState.DOWN, datetime.now(UTC), None)
        self._listeners: list[StateListener] = []
        self._sink: Sink | None = None
        self._last_mono: dict[str, float] = {}
        self._started_mono: float | None = None
        # why the driver stopped by itself (config, credentials): retrying cannot help
        self.gave_up: str | None = None

    # ------------------------------------------------------------ interface

    @abstractmethod
    async def connect(self) -> None:
        """First connection attempt; raises ``DriverError`` with the reason if it fails."""

    @abstractmethod
    async def start(self, sink: Sink) -> None:
        """Begin delivering samples to ``sink``; keeps reconnecting until ``stop()``."""

    @abstractmethod
    async def write(self, tag_id: str, value: Value) -> WriteResult:
        """Write, read back and compare; never raises for device or value problems."""

    @abstractmethod
    async def stop(self) -> None:
        """Cancel tasks and close connections; the state becomes DOWN."""

    # ------------------------------------------------------------ state

    @property
    def state(self) -> ConnectionState:
        return self._state

    def on_state_change(self, listener: StateListener) -> None:
        """Register a callback for state transitions; it must only enqueue."""
        self._listeners.append(listener)

    def _set_state(self, state: ConnState, error: str | None = None) -> None:
        """Move to ``state``; ``error`` is the current problem (None when healthy)."""
        cur = self._state
        last_error = None if state is ConnState.CONNECTED else error
        if state == cur.state and last_error == cur.last_error:
            return
        since = cur.since if state == cur.state else datetime.now(UTC)
        self._state = ConnectionState(state, since, last_error)
        if state != cur.state:
            log.info("driver %s: %s -> %s (%s)", self.id, cur.state, state, last_error or "")
        for fn in list(self._listeners):
            try:
                fn(self._state)
            except Exception:  # a listener bug must not stop the driver
                log.exception("driver %s: state listener failed", self.id)

    def status(self, stale_after_s: float = 30.0) -> dict[str, object]:
        """One JSON-ready summary for the headless event stream and the UI."""
        return {
            "driver": self.id,
            "kind": self.kind,
            **self._state.as_dict(),
            "tags": len(self.tags),
            "stale": len(self.stale_tags(stale_after_s)),
            "gave_up": self.gave_up,
            **self.stats.as_dict(),
        }

    def _give_up(self, reason: str, count: bool = True) -> None:
        """Stop for good: every tag Bad with the reason (the data-quality alarm names
        it), the state DOWN with it, the stats counting it."""
        if self.gave_up is not None:
            return
        self.gave_up = reason
        if count:
            self.stats.note_error(reason)
        else:  # the failure itself was counted; keep its fuller wording
            self.stats.last_failure = reason
        log.error("driver %s: stopped: %s", self.id, reason)
        self._mark_lost(self.tags, reason)
        self._set_state(ConnState.DOWN, reason)

    def _stopped(self) -> None:
        """State after ``stop()``: DOWN, keeping the reason if the driver had given up."""
        self._set_state(ConnState.DOWN, self.gave_up)

    # ------------------------------------------------------------ staleness

    def _fresh_mono(self, tag_id: str) -> float | None:
        """Monotonic time the tag was last known current; drivers may refine it."""
        return self._last_mono.get(tag_id)

    def last_update(self, tag_id: str) -> datetime | None:
        """UTC time the tag was last known current (a value of any quality arrived)."""
        t = self._fresh_mono(tag_id)
        if t is None:
            return None
        return datetime.now(UTC) - timedelta(seconds=time.monotonic() - t)

    def stale_tags(self, older_than_s: float) -> list[str]:
        """Tags with no update from the device for ``older_than_s``.

        Tags never heard from count as stale once the driver has been started
        for that long; connection-lost markers do not count as updates.
        """
        now = time.monotonic()
        started = self._started_mono
        out = []
        for tid in self.tags:
            t = self._fresh_mono(tid)
            if t is None:
                if started is not None and now - started >= older_than_s:
                    out.append(tid)
            elif now - t >= older_than_s:
                out.append(tid)
        return out

    # ------------------------------------------------------------ delivery

    def _emit(self, samples: list[Sample], fresh: bool = True) -> None:
        """Hand samples to the sink; ``fresh`` is False for synthetic markers."""
        if not samples:
            return
        now = time.monotonic()
        bad = 0
        last = self._last_mono
        for s in samples:
            if s.quality is Quality.BAD:
                bad += 1
            if fresh:
                last[s.tag_id] = now
        self.stats.values_received += len(samples)
        self.stats.bad_values += bad
        sink = self._sink
        if sink is None:
            return
        try:
            sink(samples)
        except Exception as e:
            self.stats.note_error(f"sink failed: {type(e).__name__}: {e}")
            log.exception("driver %s: sink failed for %d samples", self.id, len(samples))

    def _mark_lost(self, tag_ids: Iterable[str], reason: str = CONNECTION_LOST) -> None:
        """An explicit Bad/no-value sample per tag so history shows the gap."""
        now = self.now()
        self._emit([Sample(t, now, None, Quality.BAD, reason) for t in tag_ids], fresh=False)

    def _begin(self, sink: Sink) -> None:
        self._sink = sink
        self._started_mono = time.monotonic()


def config_path(base_dir: Path, p: str) -> str:
    """A file named in a driver's config: ``~`` expanded, relative to the config's folder."""
    q = Path(os.path.expanduser(p))
    return str(q if q.is_absolute() else base_dir / q)


def config_password(driver_id: str, cfg: Any) -> str | None:
    """The driver's password: given inline, or read from the ``password_env`` variable
    (a variable that is not set is a config error naming it, not an anonymous login)."""
    if getattr(cfg, "password", None):
        return cfg.password
    env = getattr(cfg, "password_env", None)
    if env:
        pw = os.environ.get(env)
        if pw is None:
            raise DriverConfigError(
                f"driver {driver_id}: environment variable {env} (password_env) is not set")
        return pw
    return None


def compare_read_back(data_type: str, requested: Value, back: Value) -> bool:
    """Did the device keep what we wrote? float32 is compared at float32 precision."""
    if requested is None or back is None:
        return requested is back
    if data_type == "bool":
        return bool(requested) == bool(back)
    if data_type == "string":
        return str(requested) == str(back)
    try:
        a, b = float(requested), float(back)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    if data_type == "float32":
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
    if data_type == "float64":
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def make_driver(
    driver_id: str,
    driver_cfg: OpcUaDriverCfg | ModbusDriverCfg,
    tags: Sequence[ResolvedTag],
    base_dir: Path | None = None,
) -> Driver:
    """The driver for one ``[drivers.<id>]`` table, given the loaded config's tags.

    Tags of other drivers are ignored, so ``LoadedConfig.tags`` can be passed as is.
    ``base_dir`` resolves relative certificate paths (the config file's folder).
    Raises ``DriverConfigError`` when an address or type cannot be served.
    """
    mine = [t for t in tags if t.driver_id == driver_id]
    if driver_cfg.kind == "opcua":
        from drivers.opcua import OpcUaDriver

        return OpcUaDriver(driver_id, driver_cfg, mine, base_dir)  # type: ignore[arg-type]
    if driver_cfg.kind == "modbus":
        from drivers.modbus import ModbusDriver

        return ModbusDriver(driver_id, driver_cfg, mine)  # type: ignore[arg-type]
    if driver_cfg.kind == "mqtt":
        from drivers.mqtt import MqttDriver

        return MqttDriver(driver_id, driver_cfg, mine, base_dir)  # type: ignore[arg-type]
    raise DriverConfigError(f"driver {driver_id!r}: unknown kind {driver_cfg.kind!r}")


def make_drivers(loaded: LoadedConfig) -> dict[str, Driver]:
    """Every driver of a loaded config, keyed by driver id.

    Equipment with its own ``unit_id`` (a device behind a Modbus gateway) is read
    with that device id; the others use the driver's ``unit_id``.
    """
    from drivers.modbus import ModbusDriver

    units = {eq.id: eq.unit_id for _, eq in loaded.equipment() if eq.unit_id is not None}
    out: dict[str, Driver] = {}
    for did, cfg in loaded.config.drivers.items():
        if cfg.kind == "modbus":
            mine = [t for t in loaded.tags if t.driver_id == did]
            out[did] = ModbusDriver(did, cfg, mine, units)
        else:
            out[did] = make_driver(did, cfg, loaded.tags, loaded.base_dir)
    return out
