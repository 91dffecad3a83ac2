"""Modbus TCP driver on pymodbus 3.16: poll groups of contiguous blocks, with read-back writes.

Each poll group runs in its own task at its own interval, so a slow block delays
only its group; each driver owns its connection, so a dead device never stalls
another driver. An exception response (e.g. code 2, illegal data address) makes
the block's tags Bad with the reason and the other blocks and groups carry on. A
timeout makes the block Bad and restarts the connection (a late answer would
otherwise be matched to the next request); while disconnected every tag carries
an explicit Bad "connection lost" marker and the supervisor reconnects with
exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from core.config.loader import ResolvedTag
from core.config.schema import ModbusDriver as ModbusDriverCfg
from core.samples import Quality, Sample, Value
from drivers import codec, vision
from drivers.base import (
    CONNECTION_LOST,
    Backoff,
    ConnState,
    Driver,
    DriverConfigError,
    DriverError,
    Sink,
    WriteResult,
    compare_read_back,
)
from drivers.modbus_map import Block, Item, parse_address, plan_blocks

log = logging.getLogger("loopline.drivers.modbus")

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


def exception_reason(code: int) -> str:
    return f"exception code {code} ({EXCEPTION_NAMES.get(code, 'unknown')})"


class _DeviceException(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(exception_reason(code))
        self.code = code


class _Timeout(Exception):
    pass


class _Lost(Exception):
    pass


@dataclass
class PollGroupRuntime:
    """One poll group: its interval, its blocks and its own counters."""

    name: str
    interval_s: float
    blocks: list[Block]
    polls: int = 0
    overruns: int = 0
    failed_blocks: int = 0
    last_poll: datetime | None = None
    tags: list[str] = field(default_factory=list)


class ModbusDriver(Driver):
    kind = "modbus"

    def __init__(
        self,
        driver_id: str,
        cfg: ModbusDriverCfg,
        tags: Sequence[ResolvedTag],
        unit_ids: Mapping[str, int] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``unit_ids`` maps equipment ids to their device id when it differs from the
        driver's ``unit_id`` (several devices behind one gateway). ``clock`` stamps the
        samples: Modbus carries no source time, so a poll is stamped with the plant's
        clock (the wall clock by default; the runtime passes a sped-up twin's)."""
        super().__init__(driver_id, tags)
        self.cfg = cfg
        if clock is not None:
            self.now = clock
        units = unit_ids or {}
        self.items: dict[str, Item] = {
            t.id: parse_address(t, units.get(t.equipment_id or "", cfg.unit_id)) for t in tags
        }
        intervals = {g.name: g.interval_ms / 1000 for g in cfg.poll_groups}
        for t in tags:
            if t.spec.poll_group != "default" and t.spec.poll_group not in intervals:
                raise DriverConfigError(
                    f"tag {t.id}: poll_group {t.spec.poll_group!r} is not one of driver "
                    f"{driver_id}'s poll_groups"
                )
        by_group: dict[str, list[Item]] = {}
        for it in self.items.values():
            by_group.setdefault(it.tag.spec.poll_group, []).append(it)
        self.groups: list[PollGroupRuntime] = []
        for name, its in sorted(by_group.items()):
            self.groups.append(
                PollGroupRuntime(
                    name=name,
                    interval_s=intervals.get(name, cfg.poll_interval_ms / 1000),
                    blocks=plan_blocks(its, cfg.max_block, cfg.max_gap),
                    tags=[i.tag.id for i in its],
                )
            )
        self._client: AsyncModbusTcpClient | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._ever_connected = False

    # ------------------------------------------------------------ connection

    def _new_client(self) -> AsyncModbusTcpClient:
        # reconnect_delay=0: we run our own backoff; retries=0: one timeout is one timeout
        return AsyncModbusTcpClient(
            self.cfg.host,
            port=self.cfg.port,
            timeout=self.cfg.timeout_s,
            retries=0,
            reconnect_delay=0,
            name=f"loopline-{self.id}",
        )

    async def _open(self) -> None:
        client = self._new_client()
        try:
            ok = await asyncio.wait_for(client.connect(), self.cfg.timeout_s + 1.0)
        except (TimeoutError, OSError, ModbusException) as e:
            client.close()
            raise DriverError(f"{self.cfg.host}:{self.cfg.port}: {e or type(e).__name__}") from None
        if not ok or not client.connected:
            client.close()
            raise DriverError(f"{self.cfg.host}:{self.cfg.port}: connection refused or timed out")
        self._client = client

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    async def connect(self) -> None:
        if self._client is not None and self._client.connected:
            return
        self._set_state(ConnState.CONNECTING)
        try:
            await self._open()
        except DriverError as e:
            self.stats.note_error(str(e))
            self._set_state(ConnState.CONNECTING, str(e))
            raise
        self._connected.set()
        self._ever_connected = True
        self._set_state(ConnState.CONNECTED)

    async def start(self, sink: Sink) -> None:
        if self._tasks:
            raise DriverError(f"driver {self.id} is already started")
        self._begin(sink)
        self._stopping = False
        if self._client is None:
            self._set_state(ConnState.CONNECTING)
        self._tasks.append(asyncio.create_task(self._supervise(), name=f"modbus-{self.id}-sup"))
        for g in self.groups:
            self._tasks.append(
                asyncio.create_task(self._poll_loop(g), name=f"modbus-{self.id}-{g.name}")
            )

    async def stop(self) -> None:
        self._stopping = True
        self._lost.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        self._close()
        self._connected.clear()
        self._stopped()

    def _lose(self, reason: str) -> None:
        """Called from a poll or write: the connection is no longer trustworthy."""
        if not self._connected.is_set():
            return
        self._connected.clear()
        self.stats.note_error(reason)
        self._close()
        self._set_state(ConnState.RECONNECTING, reason)
        self._mark_lost(self.tags, f"{CONNECTION_LOST}: {reason}")
        self._lost.set()

    async def _supervise(self) -> None:
        backoff = Backoff(self.cfg.reconnect_min_s, self.cfg.reconnect_max_s)
        while not self._stopping:
            if self._connected.is_set():
                self._lost.clear()
                await self._lost.wait()
                backoff.reset()
                if self._stopping:
                    return
                await asyncio.sleep(backoff.next())  # let a restarting device come back
                continue
            try:
                await self._open()
            except DriverError as e:
                self.stats.note_error(str(e))
                state = ConnState.RECONNECTING if self._ever_connected else ConnState.CONNECTING
                if self._state.state is not state or self._state.last_error != str(e):
                    self._set_state(state, str(e))
                await asyncio.sleep(backoff.next())
                continue
            if self._ever_connected:
                self.stats.reconnects += 1
            self._ever_connected = True
            self._connected.set()
            self._set_state(ConnState.CONNECTED)
            backoff.reset()

    # ------------------------------------------------------------ reading

    async def _read(
        self, table: str, address: int, count: int, unit: int
    ) -> list[int] | list[bool]:
        client = self._client
        if client is None or not client.connected:
            raise _Lost("not connected")
        dev = unit
        fn = {
            "hr": client.read_holding_registers,
            "ir": client.read_input_registers,
            "co": client.read_coils,
            "di": client.read_discrete_inputs,
        }[table]
        try:
            rr = await asyncio.wait_for(
                fn(address, count=count, device_id=dev), self.cfg.timeout_s + 0.5
            )
        except TimeoutError:
            raise _Timeout(f"timeout after {self.cfg.timeout_s:g}s") from None
        except ConnectionException as e:
            raise _Lost(str(e)) from None
        except ModbusIOException as e:
            text = str(e)
            if "No response" in text or "no response" in text.lower():
                raise _Timeout(f"timeout after {self.cfg.timeout_s:g}s") from None
            raise _Lost(text) from None
        except (OSError, ModbusException) as e:
            raise _Lost(str(e) or type(e).__name__) from None
        if rr.isError():
            raise _DeviceException(int(getattr(rr, "exception_code", 0)))
        if table in ("co", "di"):
            return list(rr.bits[:count])
        regs = list(rr.registers)
        if len(regs) < count:
            raise _DeviceException(3)
        return regs

    def _decode_block(
        self, block: Block, data: list[int] | list[bool], ts: datetime
    ) -> list[Sample]:
        out: list[Sample] = []
        for it in block.items:
            spec = it.tag.spec
            off = it.address - block.address
            try:
                if it.table in ("co", "di"):
                    value: Value = bool(data[off])
                elif it.bit is not None:
                    value = codec.decode_bit(int(data[off]), it.bit)
                elif spec.vision is not None:
                    value = vision.from_registers(
                        data[off : off + it.count], spec.vision)  # type: ignore[arg-type]
                else:
                    raw = codec.decode(
                        data[off : off + it.count],  # type: ignore[arg-type]
                        spec.data_type,
                        spec.word_order,
                        spec.byte_order,
                    )
                    value = codec.to_engineering(raw, spec.scale, spec.offset)
            except (codec.CodecError, IndexError, ValueError) as e:
                out.append(Sample(it.tag.id, ts, None, Quality.BAD, f"decode error: {e}"))
                continue
            out.append(Sample(it.tag.id, ts, value, Quality.GOOD).checked())
        return out

    async def _poll_block(self, g: PollGroupRuntime, block: Block) -> list[Sample]:
        try:
            data = await self._read(block.table, block.address, block.count, block.unit)
        except _DeviceException as e:
            if e.code == 2 and len(block.items) > 1 and not block.split:
                # the block spans an address the device refuses: read the gap-free runs of
                # its tags instead (a second refusal of a run reads that run tag by tag)
                i = g.blocks.index(block)
                singles = plan_blocks(block.items, max_block=block.count, max_gap=0)
                if len(singles) == 1:
                    singles = [Block(it.table, it.address, it.count, [it], True, it.unit)
                               for it in block.items]
                for b in singles:
                    b.split = b.split or len(b.items) == 1  # nothing left to split
                g.blocks[i : i + 1] = singles
                log.info(
                    "driver %s: block %s:%d+%d refused (code 2), split into %d reads",
                    self.id,
                    block.table,
                    block.address,
                    block.count,
                    len(singles),
                )
                out: list[Sample] = []
                for b in singles:
                    out += await self._poll_block(g, b)
                return out
            g.failed_blocks += 1
            self.stats.note_error(f"{block.table}:{block.address}+{block.count}: {e}")
            now = self.now()
            return [Sample(it.tag.id, now, None, Quality.BAD, str(e)) for it in block.items]
        except _Timeout as e:
            g.failed_blocks += 1
            now = self.now()
            bad = [Sample(it.tag.id, now, None, Quality.BAD, str(e)) for it in block.items]
            self._emit(bad)
            self._lose(str(e))
            raise _Lost(str(e)) from None
        return self._decode_block(block, data, self.now())

    async def _poll_loop(self, g: PollGroupRuntime) -> None:
        next_t = time.monotonic()
        while not self._stopping:
            if not self._connected.is_set():
                await self._connected.wait()
                next_t = time.monotonic()
            samples: list[Sample] = []
            try:
                for block in list(g.blocks):
                    samples += await self._poll_block(g, block)
            except _Lost as e:
                self._emit(samples)
                self._lose(str(e))
                continue
            except asyncio.CancelledError:
                raise
            except Exception as e:  # never let one group's bug end polling
                self.stats.note_error(f"poll group {g.name}: {type(e).__name__}: {e}")
                log.exception("driver %s: poll group %s failed", self.id, g.name)
                self._emit(samples)
                await asyncio.sleep(g.interval_s)
                self._set_state(self._state.state, f"poll group {g.name}: {e}")
                continue
            g.polls += 1
            g.last_poll = self.now()
            self._emit(samples)
            next_t += g.interval_s
            now = time.monotonic()
            if next_t < now:  # overran: skip missed ticks instead of bursting
                g.overruns += 1
                next_t = now
            await asyncio.sleep(next_t - now)

    # ------------------------------------------------------------ writing

    async def write(self, tag_id: str, value: Value) -> WriteResult:
        rt = self.tags.get(tag_id)
        if rt is None:
            return self._write_failed(tag_id, value, f"unknown tag {tag_id!r} on driver {self.id}")
        if not rt.spec.writable:
            return self._write_failed(tag_id, value, f"tag {tag_id} is not writable (config)")
        it = self.items[tag_id]
        if it.table in ("ir", "di"):
            return self._write_failed(tag_id, value, f"{it.table} addresses are read-only")
        client = self._client
        if client is None or not self._connected.is_set():
            return self._write_failed(tag_id, value, "not connected")
        spec = rt.spec
        dev = it.unit
        expected: Value
        try:
            if it.table == "co":
                expected = codec.as_bool(value)
                rr = await client.write_coil(it.address, expected, device_id=dev)
            elif it.bit is not None:
                cur = await self._read("hr", it.address, 1, dev)
                expected = codec.as_bool(value)
                word = codec.set_bit(int(cur[0]), it.bit, expected)
                rr = await client.write_register(it.address, word, device_id=dev)
            else:
                raw = codec.from_engineering(value, spec.data_type, spec.scale, spec.offset)  # type: ignore[arg-type]
                regs = codec.encode(raw, spec.data_type, spec.word_order, spec.byte_order)
                # what the device should hold, at the register type's precision
                expected = codec.to_engineering(
                    codec.decode(regs, spec.data_type, spec.word_order, spec.byte_order),
                    spec.scale,
                    spec.offset,
                )
                rr = await client.write_registers(it.address, regs, device_id=dev)
            if rr.isError():
                return self._write_failed(tag_id, value, exception_reason(int(rr.exception_code)))
            data = await self._read(it.table, it.address, it.count, dev)
        except codec.CodecError as e:
            return self._write_failed(tag_id, value, str(e))
        except _DeviceException as e:
            return self._write_failed(tag_id, value, f"read-back: {e}")
        except (_Timeout, _Lost, ModbusException, OSError, TimeoutError) as e:
            self._lose(str(e) or "write failed")
            return self._write_failed(tag_id, value, str(e) or type(e).__name__)
        except Exception as e:  # anything else: report, never raise to the executor
            log.exception("driver %s: write to %s failed", self.id, tag_id)
            return self._write_failed(tag_id, value, f"write failed: {e or type(e).__name__}")
        back = self._decode_block(
            Block(it.table, it.address, it.count, [it]), data, self.now()
        )[0]
        self.stats.writes += 1
        ok = compare_read_back(spec.data_type, expected, back.value)
        if not ok:
            self.stats.write_failures += 1
        return WriteResult(
            tag_id,
            ok,
            value,
            back.value,
            None if ok else f"read-back {back.value!r} differs from written {value!r}",
            mismatch=not ok,
        )

    def _write_failed(self, tag_id: str, value: Value, error: str) -> WriteResult:
        self.stats.writes += 1
        self.stats.write_failures += 1
        return WriteResult(tag_id, False, value, None, error)
