"""The loopline runtime: the plant twin (when configured), drivers, ingest, detection,
the closed-loop engine and the ML jobs, wired on one asyncio loop.

The console hosts it in-process; ``loopline run --headless`` hosts it without a UI.
Threads and what runs where:

- event loop: drivers (their sinks only stamp and enqueue), the ML scheduler, the
  upkeep timer (ingest upkeep runs in ``to_thread``);
- ``loopline-detect``: detection, alarms and the engine's recommend/decide steps
  (store writes), fed by a bounded queue that counts what it drops;
- ``loopline-plan``: re-plans for breakdowns (a solver second each), off the detect thread;
- ``loopline-outbox``: the executor, which also picks up decisions made in other
  processes (``loopline approve``, a second console): all of them go through the store;
- ``loopline-lease``: the heartbeat renewing this runtime's line leases;
- the store writer's own thread (``core.ingest.writer``).

Several runtimes can share one store, each started for some lines (``lines``): each
holds a lease per line (``core.store.leases``), reads, detects and acts only for its
lines (``runtime.line_scope``), and refuses to start while another live runtime holds
one of them.

Everything a person or script should know is published on the ``EventBus``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from core.alarms import AlarmManager
from core.clock import Clock, TwinClock, WallClock, ensure_utc, parse_utc
from core.config import LoadedConfig
from core.counters import note_detection, note_event
from core.detect import DetectLoop, DetectorSet
from core.detect.events import Detection
from core.engine.engine import Engine
from core.events import (
    ConnectionEvent,
    EngineEvent,
    EventBus,
    RuntimeEvent,
    StatsEvent,
)
from core.ingest.pipeline import IngestPipeline
from core.plant_clock import publish_plant_clock
from core.samples import Quality, Sample
from core.store import leases
from core.store.db import Store
from drivers.base import ConnectionState, Driver, make_drivers
from runtime.action_alarms import FailedActionWatch
from runtime.error_tap import COUNTED, ErrorTap
from runtime.line_scope import LineScope, LineScopeError
from runtime.ml_glue import MlGlue
from runtime.plant_io import DriverIO, DriverPlant
from runtime.twin import TwinStartError, point_drivers_at_twin, scale_io_to_speed, start_twin

log = logging.getLogger(__name__)

ApproveMode = Literal["never", "auto", "policy"]
APPROVE_MODES: tuple[str, ...] = ("never", "auto", "policy")


class RuntimeError_(Exception):
    """The runtime cannot start or went down; str() says why in plain words."""


@dataclass
class RuntimeOptions:
    """What the CLI or the console asks of the runtime (None: the config's value)."""

    speed: float | None = None
    seed: int | None = None
    inject: list[str] = field(default_factory=list)
    truth: Path | None = None
    approve: ApproveMode = "policy"
    spawn_twin: bool | None = None  # None: as [simulator] enabled says
    opcua_port: int | None = None
    modbus_port: int | None = None
    free_ports_if_busy: bool = False  # the console's twin: busy configured ports → free ones
    twin_args: list[str] = field(default_factory=list)
    ml: bool = True
    stats_every_s: float = 5.0
    upkeep_every_s: float = 2.0
    tick_every_s: float = 0.25
    detect_queue_max: int = 2_000  # batches
    lines: list[str] | None = None  # the lines this runtime owns (None: all of them)
    lease_ttl_s: float = leases.DEFAULT_TTL_S  # a dead runtime's lines free up after this
    lease_wait_s: float = 0.0  # wait this long for lines another runtime holds (0: refuse)


@dataclass
class RuntimeCounters:
    batches: int = 0
    samples: int = 0
    detect_dropped: int = 0  # batches the detection queue refused (full)
    detect_errors: int = 0
    upkeep_errors: int = 0
    policy_approved: int = 0
    errors: int = 0  # every error met: caught here, reported by upkeep, or logged anywhere


class Runtime:
    """One running plant connection. ``await start()``, ``await stop()``; or ``run()``."""

    def __init__(self, loaded: LoadedConfig, store: Store, opts: RuntimeOptions | None = None,
                 *, bus: EventBus | None = None) -> None:
        self.loaded, self.store = loaded, store
        self.opts = opts or RuntimeOptions()
        self.bus = bus or EventBus()
        self.counters = RuntimeCounters()
        try:
            self.scope = LineScope(loaded, self.opts.lines)
        except LineScopeError as e:
            raise RuntimeError_(str(e)) from None
        self.lease_owner = leases.runtime_id()
        self._leased: list[str] = []
        self._follow_store_clock = False
        self.twin: Any = None  # runtime.twin.TwinProcess
        self.clock: Clock = WallClock()
        self.drivers: dict[str, Driver] = {}
        self.pipe: IngestPipeline | None = None
        self.engine: Engine | None = None
        self.alarms: AlarmManager | None = None
        self.detect: DetectLoop | None = None
        self.ml = MlGlue(self.scope.data_config, store, now=lambda: self.clock.now(),
                         publish=self._publish, submit=self._to_plan_lane, error=self._error,
                         wanted=self.opts.ml)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._q: queue.Queue[list[Any] | None] = queue.Queue(self.opts.detect_queue_max)
        self._plan_q: queue.Queue[Any] = queue.Queue(100)
        self._threads: list[threading.Thread] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._io: Any = None
        self._clock_tags: set[str] = {t.id for t in self.scope.io_config.tags
                                      if t.spec.kind == "clock"}
        self._line_of = {t.equipment_id: t.line_id for t in loaded.tags if t.equipment_id}
        self._injected: deque[Any] = deque(maxlen=1000)  # detections made outside detect
        self.started_at: float | None = None
        self.errors: deque[str] = deque(maxlen=200)  # the newest; a long run stays bounded
        self._tap = ErrorTap(self._count_error)  # errors logged anywhere in loopline
        self.fatal: str | None = None  # why the runtime had to stop, if it had to
        self._stop_event: asyncio.Event | None = None
        self._lock_file: Any = None
        self._learn_speed = False

    # ------------------------------------------------------------ life cycle

    async def start(self) -> Runtime:
        self._loop = asyncio.get_running_loop()
        self.started_at = time.monotonic()
        self._tap.install()
        if not self.scope.partial:
            self._lock_store()
        await self._take_lines()
        self._spawn_thread("loopline-lease", self._lease_worker)
        sim = self.loaded.config.simulator
        spawn = sim.enabled if self.opts.spawn_twin is None else self.opts.spawn_twin
        if spawn:
            await self._start_twin()
        elif self._clock_tags:
            # a plant that publishes its clock (another process's twin, a line PC): follow
            # it, learning its speed from successive readings, so windows and expiries run
            # in plant time
            self.clock = TwinClock(WallClock().now(), 1.0)
            self._learn_speed = True
        elif self.scope.partial:
            self._follow_plant_clock()
        if not spawn and (self.opts.speed or self.opts.inject or self.opts.seed is not None):
            self._publish(RuntimeEvent(self.clock.now(), "--speed/--seed/--inject apply to the "
                                       "plant twin, which is not started", event="warning",
                                       level="warning"))
        self.drivers = make_drivers(self.scope.io_config)
        if self.scope.partial:  # only the drivers that serve our lines
            used = self.scope.drivers_used()
            self.drivers = {k: d for k, d in self.drivers.items() if k in used}
        for d in self.drivers.values():
            d.now = self.clock.now
        self._io = DriverIO(self.loaded, self.drivers, self._loop)
        self.pipe = IngestPipeline(self.scope.data_config, self.store, self.clock).start()
        self.engine = Engine(self.store, self.loaded.config, self.clock,
                             plant=DriverPlant(self._io, self.loaded), device=self._io,
                             bus=self.bus, retrain=self.ml.start_retrain)
        self.alarms = AlarmManager.from_config(self.store, self.loaded, self.clock)
        self._unwatch_failures = self.bus.subscribe(FailedActionWatch(self.alarms,
                                                                      self.bus.publish))
        self._build_detection()
        if self.scope.partial:  # several runtimes share the store: only our lines' actions
            self.engine.executor.accepts = lambda conn, row: self.scope.owns_action(
                conn, row, self.lease_owner)
        recovered = self.engine.executor.recover()
        if recovered:
            self._publish(RuntimeEvent(self.clock.now(), f"resuming {len(recovered)} action(s) "
                                       "left running by a previous run", event="recovered",
                                       detail={"action_ids": recovered}))
        self._spawn_thread("loopline-detect", self._detect_worker)
        self._spawn_thread("loopline-plan", self._plan_worker)
        self._spawn_thread("loopline-outbox", self._outbox_worker)
        for d in self.drivers.values():
            d.on_state_change(lambda st, d=d: self._on_state(d.id, st))
            await d.start(self._sink)
        if self.opts.ml:
            self.ml.start()
        self._tasks.append(asyncio.create_task(self._upkeep(), name="loopline-upkeep"))
        self._publish(RuntimeEvent(self.clock.now(), "runtime started", event="started",
                                   detail={"drivers": sorted(self.drivers),
                                           "twin": bool(self.twin), "approve": self.opts.approve,
                                           "speed": getattr(self.clock, "speed", 1.0),
                                           "lines": self.scope.lines,
                                           "tags": len(self.scope.io_config.tags),
                                           "owner": self.lease_owner}))
        return self

    async def stop(self) -> dict[str, Any]:
        """Stop everything in order, drain the store writer, return the summary."""
        self._publish(RuntimeEvent(self.clock.now(), "stopping", event="stopping"))
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.ml.close()
        for d in self.drivers.values():
            with contextlib.suppress(Exception):
                await d.stop()
        self._stop.set()
        for q in (self._q, self._plan_q):
            with contextlib.suppress(queue.Full):
                q.put_nowait(None)
        for th in self._threads:
            await asyncio.to_thread(th.join, 30)
        ingest: dict[str, Any] = {}
        if self.pipe is not None:
            ingest = await asyncio.to_thread(self.pipe.close)
        if self.twin is not None:
            await asyncio.to_thread(self.twin.stop)
        summary = self.summary(ingest)
        self._tap.remove()
        self._unlock_store()
        self._release_lines()
        self._publish(RuntimeEvent(self.clock.now(), "stopped", event="summary", detail=summary))
        return summary

    async def run(self, stop: asyncio.Event, duration_s: float | None = None) -> dict[str, Any]:
        """Start, run until ``stop`` is set or ``duration_s`` wall seconds pass, stop."""
        self._stop_event = stop
        try:
            await self.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.stop()  # a twin already spawned, a writer already started
            raise
        try:
            if duration_s is None:
                await stop.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), duration_s)
        finally:
            summary = await self.stop()
        return summary

    def _lock_store(self) -> None:
        """One runtime per store: a second one would re-run the first one's in-flight
        actions on recovery. An advisory lock beside the database, freed by the OS
        when the process dies (a console with --no-runtime or a script needs none).
        On a PostgreSQL store the same rule is a session advisory lock (core.store.locks)."""
        import fcntl

        if self.store.path is None:
            if not self.store.try_lock("loopline.runtime"):
                raise RuntimeError_(f"another loopline runtime is running on {self.store.where};"
                                    " stop it, or open a second console with "
                                    "`loopline tui --no-runtime`")
            return
        path = self.store.path.with_name(self.store.path.name + ".runtime.lock")
        f = path.open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            who = f.read().strip() or "another process"
            f.close()
            raise RuntimeError_(f"another loopline runtime is running on {self.store.path} "
                                f"({who}); stop it, or open a second console with "
                                "`loopline tui --no-runtime`") from None
        f.seek(0)
        f.truncate()
        import os

        f.write(f"pid {os.getpid()}")
        f.flush()
        self._lock_file = f

    def _unlock_store(self) -> None:
        if self.store.path is None:
            self.store.unlock("loopline.runtime")
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                self._lock_file.close()
            self._lock_file = None

    # ------------------------------------------------------------ line leases

    async def _take_lines(self) -> None:
        """Lease our lines, all or none: refused (with who holds which) while another
        live runtime holds one, unless ``lease_wait_s`` lets us wait for it to lapse."""
        deadline = time.monotonic() + self.opts.lease_wait_s
        waited = False
        while True:
            try:
                taken = await asyncio.to_thread(leases.acquire, self.store, self.scope.lines,
                                                self.lease_owner, self.opts.lease_ttl_s)
                break
            except leases.LeaseRefused as e:
                if time.monotonic() >= deadline:
                    raise RuntimeError_(str(e)) from None
                if not waited:
                    waited = True
                    self._publish(RuntimeEvent(self.clock.now(), f"waiting: {e}",
                                               event="lease_wait", level="warning"))
                await asyncio.sleep(min(0.5, max(0.05, self.opts.lease_ttl_s / 10)))
        self._leased = list(self.scope.lines)
        for h in taken:
            self._publish(RuntimeEvent(
                self.clock.now(), f"line {h.line_id} taken over from {h.describe()}, whose "
                "lease had lapsed", event="lease_takeover",
                detail={"line": h.line_id, "from": h.owner, "host": h.host,
                        "expired_at": h.expires_at.isoformat()}))
        self._publish(RuntimeEvent(self.clock.now(), f"owning line(s) "
                                   f"{', '.join(self.scope.lines)}", event="lease",
                                   detail={"lines": self.scope.lines, "owner": self.lease_owner,
                                           "ttl_s": self.opts.lease_ttl_s}))

    def _lease_worker(self) -> None:
        """Renew our leases every third of their time to live. A lease another runtime
        took over (ours had lapsed: the store was out of reach too long) stops this
        runtime: two owners of one line must never act at once."""
        every = max(0.05, self.opts.lease_ttl_s / 3)
        while not self._stop.wait(every):
            try:
                lost = leases.renew(self.store, self._leased, self.lease_owner,
                                    self.opts.lease_ttl_s)
            except Exception as e:  # the store is away: held() lets the lease lapse
                self._error("lease heartbeat", e)
                continue
            if lost and not self.fatal:
                self._leased = [x for x in self._leased if x not in lost]
                self.fatal = (f"line(s) {', '.join(lost)} were taken over by another runtime "
                              "(this one's lease had lapsed); stopping")
                self._publish(RuntimeEvent(self.clock.now(), self.fatal, event="error",
                                           level="fatal"))
                if self._loop is not None and self._stop_event is not None:
                    self._loop.call_soon_threadsafe(self._stop_event.set)

    def _release_lines(self) -> None:
        if self._leased:
            try:
                leases.release(self.store, self._leased, self.lease_owner)
            except Exception as e:  # they lapse on their own
                log.warning("line leases not released: %s", e)
            self._leased = []

    def _follow_plant_clock(self) -> None:
        """A line PC without the plant clock's tag follows the plant time another
        runtime publishes in the store (a fast twin), else the wall clock."""
        from core.plant_clock import plant_clock

        self._follow_store_clock = True
        try:
            pc = plant_clock(self.store)
        except Exception:
            return
        if isinstance(pc, TwinClock):
            if isinstance(self.clock, TwinClock):
                self.clock.sync(pc.now())
                self.clock.speed = pc.speed
            else:
                self.clock = pc

    # ------------------------------------------------------------ twin

    async def _start_twin(self) -> None:
        extra: list[str] = list(self.opts.twin_args)
        if self.opts.speed is not None:
            extra += ["--speed", f"{self.opts.speed:g}"]
        if self.opts.seed is not None:
            extra += ["--seed", str(self.opts.seed)]
        for spec in self.opts.inject:
            extra += ["--inject", spec]
        if self.opts.truth is not None:
            extra += ["--truth", str(Path(self.opts.truth).resolve())]
        if "--start" not in extra and not self.loaded.config.simulator.start:
            resume = await asyncio.to_thread(self._resume_time)
            if resume is not None:
                extra += ["--start", resume.isoformat()]
        try:
            self.twin = await asyncio.to_thread(
                start_twin, self.loaded, opcua_port=self.opts.opcua_port,
                modbus_port=self.opts.modbus_port, extra_args=extra,
                free_if_busy=self.opts.free_ports_if_busy)
        except TwinStartError as e:
            raise RuntimeError_(f"the plant twin did not start: {e}") from None
        point_drivers_at_twin(self.loaded, self.twin.host, self.twin.opcua_port,
                              self.twin.modbus_port)
        speed = self.opts.speed or self.loaded.config.simulator.speed
        scale_io_to_speed(self.loaded, speed)
        start = self.twin.info.get("start")
        self.clock = TwinClock(parse_utc(start) if start else WallClock().now(), speed)
        moved = (f" (ports in use, moved: {', '.join(self.twin.moved)})"
                 if self.twin.moved else "")
        self._publish(RuntimeEvent(self.clock.now(), f"plant twin serving at speed {speed:g}"
                                   f"{moved}", event="twin",
                                   detail={"opcua": self.twin.opcua_endpoint,
                                           "modbus_port": self.twin.modbus_port,
                                           "moved": list(self.twin.moved),
                                           "pid": self.twin.proc.pid}))

    def _resume_time(self) -> datetime | None:
        """Where plant time must go on from: a twin restarted within the hour would start
        again at the top of the hour, behind history already stored, and the same minutes
        would be counted twice (OEE above 100 %). Plant time never runs backwards."""
        from datetime import timedelta

        from core.history import newest_ts

        top = WallClock().now().replace(minute=0, second=0, microsecond=0)
        try:
            with self.store.engine.connect() as conn:
                last = newest_ts(conn)
        except Exception:  # an unreadable store fails later, with its own message
            return None
        if last is None:
            return None
        last = ensure_utc(last)
        return last + timedelta(seconds=1) if last >= top else None

    # ------------------------------------------------------------ samples

    def _sink(self, samples: list[Sample]) -> None:
        """Driver callback on the event loop: stamp, enqueue; never blocks."""
        assert self.pipe is not None
        if self._clock_tags:
            self._sync_clock(samples)
        if self.scope.read_only_tags:  # the plant clock: stored by the home runtime only
            ro = self.scope.read_only_tags
            samples = [s for s in samples if s.tag_id not in ro]
            if not samples:
                return
        stamped = self.pipe.handle(samples)
        self.counters.batches += 1
        self.counters.samples += len(samples)
        self._io.observe(samples)
        notes = self.pipe.drain_counter_notes()
        if notes:
            self._on_counter_notes(notes)
        try:
            self._q.put_nowait(stamped)
        except queue.Full:
            self.counters.detect_dropped += 1

    def _on_counter_notes(self, notes: list[Any]) -> None:
        """Counter restarts, wraps and refusals: on the bus; refusals raise (and the next
        booked reading clears) the machine's data-quality alarm, on the detect thread."""
        for n in notes:
            self._publish(note_event(n))
            det = note_detection(n, self._line_of.get(n.equipment_id))
            if det is not None:
                self._injected.append(det)

    def _sync_clock(self, samples: list[Sample]) -> None:
        if not isinstance(self.clock, TwinClock):
            return
        for s in samples:
            if s.tag_id in self._clock_tags and isinstance(s.value, str) and s.value:
                with contextlib.suppress(ValueError):
                    self.clock.sync(parse_utc(s.value), learn_speed=self._learn_speed)

    def _build_detection(self) -> None:
        from core.detect.spc import characteristics_from_store

        try:
            chars = characteristics_from_store(self.store)
        except Exception as e:  # SPC then waits for its characteristics; the rest runs
            log.warning("no SPC characteristics from the store: %s", e)
            chars = {}
        models = {d.model for d in self.loaded.config.detectors if getattr(d, "model", None)}
        sources = {m: self.ml.source_for(m) for m in models}
        ds = DetectorSet.from_config(self.scope.data_config, self.clock, score_sources=sources,
                                     characteristics=chars)
        lines = list(self.scope.lines)
        self.detect = DetectLoop(ds, self.clock, alarms=self.alarms,
                                 on_detection=self._on_detection, publish=self.bus.publish,
                                 store=self.store, lines=lines)

    def _on_detection(self, det: Any) -> Any:
        assert self.engine is not None
        if self.engine.lane_of(det) == "plan":
            self._to_plan_lane(det)
            return None
        return self._decide(det)

    def _to_plan_lane(self, det: Any) -> None:
        """Decided on the plan thread: the detection thread is never kept waiting."""
        try:
            self._plan_q.put_nowait(det)
        except queue.Full:
            self.counters.detect_dropped += 1

    def _decide(self, det: Any) -> Any:
        assert self.engine is not None
        res = self.engine.on_detection(det, approve=self.opts.approve)
        if res.action_id is not None:
            self.counters.policy_approved += 1
        return res

    def _plan_worker(self) -> None:
        """Re-plans off the detection thread; the scheduler (ortools) and the base plan are
        made ready first, so the first breakdown does not pay for them."""
        try:
            from core.scheduling.service import current_plan

            current_plan(self.store, self.clock.now())
        except Exception as e:  # no plan yet is not fatal: the re-plan will say why
            log.warning("no base plan at start: %s", e)
        while not self._stop.is_set():
            try:
                det = self._plan_q.get(timeout=0.5)
            except queue.Empty:
                continue
            if det is None:
                break
            try:
                self._decide(det)
            except Exception as e:
                self.counters.detect_errors += 1
                self._error("re-plan", e)

    def _detect_worker(self) -> None:
        assert self.detect is not None
        next_tick = time.monotonic()
        while not self._stop.is_set():
            timeout = max(0.0, next_tick - time.monotonic())
            try:
                batch = self._q.get(timeout=timeout)
            except queue.Empty:
                batch = []
            if batch is None:
                break
            try:
                while self._injected:
                    self.detect.dispatch([self._injected.popleft()])
                if batch:
                    self.detect.on_samples(batch)
                    self._clock_jumps()
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self.opts.tick_every_s
                    self.detect.tick()
            except Exception as e:  # detection must go on with the next batch
                self.counters.detect_errors += 1
                self._error("detection", e)

    def _clock_jumps(self) -> None:
        """A plant clock that went back is a data-quality alarm (the samples themselves
        are stored Uncertain by the ingest)."""
        assert self.pipe is not None and self.detect is not None
        tags = {t.id: t for t in self.loaded.tags}
        for j in self.pipe.time_order.take():
            t = tags.get(j.tag_id)
            self.detect.dispatch([Detection(
                kind="bad_data", detector_id="clock_jump", problem_key="plant:clock_jump",
                priority="high", onset=j.at, cleared=j.cleared, tag_id=j.tag_id,
                equipment_id=t.equipment_id if t else None,
                line_id=t.line_id if t else None, quality=Quality.UNCERTAIN,
                value=j.back_s or None,
                summary=("plant clock in order again" if j.cleared else
                         f"plant clock went back {j.back_s:g} s ({j.tag_id}: "
                         f"{j.at.isoformat()} after {j.newest.isoformat()}); newer-looking "
                         "samples are kept as Uncertain"))])

    def _outbox_worker(self) -> None:
        assert self.engine is not None
        try:
            self.engine.executor.run_forever(self._stop, poll_s=0.25)
        except Exception as e:
            self._error("outbox executor", e)

    def _spawn_thread(self, name: str, target: Any) -> None:
        th = threading.Thread(target=target, name=name, daemon=True)
        th.start()
        self._threads.append(th)

    # ------------------------------------------------------------ upkeep, ML

    async def _upkeep(self) -> None:
        """Ingest upkeep, expiry, outcome windows, stats: off the loop, on a timer."""
        last_stats = 0.0
        while True:
            await asyncio.sleep(self.opts.upkeep_every_s)
            try:
                await asyncio.to_thread(self._upkeep_sync)
            except Exception as e:
                self.counters.upkeep_errors += 1
                self._error("upkeep", e)
            if self.twin is not None and not self.twin.running and not self.fatal:
                self.fatal = (f"the plant twin exited (code {self.twin.proc.returncode}): "
                              f"{self.twin.output_tail(3)}").strip()
                self._publish(RuntimeEvent(self.clock.now(), self.fatal, event="error",
                                           level="fatal"))
                if self._stop_event is not None:
                    self._stop_event.set()
            if time.monotonic() - last_stats >= self.opts.stats_every_s:
                last_stats = time.monotonic()
                self._publish(StatsEvent(self.clock.now(), "runtime counters",
                                         detail=self.stats()))

    def _upkeep_sync(self) -> None:
        assert self.pipe is not None and self.engine is not None
        rep = self.pipe.maintain()
        if self._follow_store_clock:
            self._follow_plant_clock()
        else:
            try:
                publish_plant_clock(self.store, self.clock)  # for the CLI beside us
            except Exception as e:
                log.warning("plant clock not published: %s", e)
        for err in rep.errors or []:
            self._count_error(f"ingest upkeep: {err}", level="warning")
        self.engine.recommender.expire_stale()
        if self.scope.home:  # outcomes are measured once, by the home runtime
            self.engine.evaluate()

    # ------------------------------------------------------------ events, stats

    def _on_state(self, driver_id: str, st: ConnectionState) -> None:
        d = st.as_dict()
        drv = self.drivers.get(driver_id)
        gave_up = f"driver {driver_id}: {drv.gave_up}" if drv and drv.gave_up else None
        if gave_up and gave_up not in self.errors:  # stopped for good: the summary says why
            self.counters.errors += 1
            self.errors.append(gave_up)
        self._publish(ConnectionEvent(self.clock.now(), f"{driver_id}: {d.get('state')}",
                                      driver_id=driver_id, state=str(d.get("state")),
                                      since=d.get("since"), error=d.get("last_error")))

    def _publish(self, ev: EngineEvent) -> None:
        self.bus.publish(ev)

    def _error(self, where: str, e: BaseException) -> None:
        msg = f"{where}: {type(e).__name__}: {e}".splitlines()[0]
        log.error("%s", msg, exc_info=e, extra={COUNTED: True})
        self._count_error(msg)

    def _count_error(self, msg: str, level: str = "error") -> None:
        """One error: counted, kept for the summary, emitted (also for logged ones)."""
        self.counters.errors += 1
        self.errors.append(msg)
        self._publish(RuntimeEvent(self.clock.now(), msg, event="error", level=level))

    def stats(self) -> dict[str, Any]:
        c = self.counters
        out: dict[str, Any] = {
            "plant_time": ensure_utc(self.clock.now()).isoformat(),
            "uptime_s": round(time.monotonic() - (self.started_at or time.monotonic()), 1),
            "samples": c.samples, "batches": c.batches, "detect_dropped": c.detect_dropped,
            "detect_queue": self._q.qsize(), "detect_errors": c.detect_errors,
            "errors_total": c.errors,
            "policy_approved": c.policy_approved,
        }
        if self.pipe is not None:
            out["ingest"] = self.pipe.stats()
        if self.detect is not None:
            out["detections"] = dict(self.detect.stats.detections)
            out["alarm_changes"] = self.detect.stats.alarm_changes
            out["consumer_errors"] = self.detect.stats.consumer_errors
        out["drivers"] = {k: {**d.state.as_dict(), **d.stats.as_dict(), "gave_up": d.gave_up}
                          for k, d in self.drivers.items()}
        return out

    def summary(self, ingest: Mapping[str, Any] | None = None) -> dict[str, Any]:
        from core.views import plant_snapshot

        s = self.stats()
        if ingest:
            s["ingest"] = dict(ingest)
        try:
            s["plant"] = plant_snapshot(self.store.engine).counts
        except Exception as e:
            s["plant"] = {"error": str(e)}
        s["errors"] = list(self.errors)[-20:]
        s["errors_total"] = self.counters.errors
        if self.fatal:
            s["fatal"] = self.fatal
        return s


class BackgroundRuntime:
    """The runtime on its own event loop in a thread: the console's loop stays free of
    driver callbacks, and the console talks to it only through the bus, the alarm
    manager (thread-safe) and the store."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.summary: dict[str, Any] | None = None
        self._thread = threading.Thread(target=self._main, name="loopline-runtime", daemon=True)

    def start(self, timeout_s: float = 120.0) -> Runtime:
        """Start and wait until the plant is connected or the start failed (raised)."""
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError_(f"the runtime did not start within {timeout_s:.0f} s")
        if self._error is not None:
            raise self._error
        return self.runtime

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.runtime.start()
        except BaseException as e:
            self._error = e if isinstance(e, RuntimeError_) else RuntimeError_(
                f"the runtime failed to start: {type(e).__name__}: {e}")
            self._ready.set()
            with contextlib.suppress(Exception):
                await self.runtime.stop()
            self._stopped.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            try:
                self.summary = await self.runtime.stop()
            finally:
                self._stopped.set()

    @property
    def started(self) -> bool:
        """start() was called (stop() before it would wait for a thread that never ran)."""
        return self._thread.ident is not None

    def stop(self, timeout_s: float = 90.0) -> dict[str, Any] | None:
        if not self.started:
            return None
        if self._loop is not None and self._stop is not None and not self._stopped.is_set():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._stopped.wait(timeout_s)
        self._thread.join(5)
        return self.summary
