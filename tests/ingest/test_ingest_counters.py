"""Part counters: wraps at the data type's (or the tag's) modulus, device restarts counted
from 0, implausible jumps refused, stalls ignored; and a real Modbus device whose uint16
counter restarts books the true parts."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from datetime import datetime, timedelta
from pathlib import Path

from ingest_helpers import T0, at, sample
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from core.alarms import AlarmManager
from core.clock import FrozenClock
from core.config import LoadedConfig, load_config
from core.counters import CounterBook, CounterSpec, note_detection, note_event
from core.ingest.contextualizer import Contextualizer
from core.ingest.pipeline import IngestPipeline
from core.production import BASELINE_KEY, ProductionTracker
from core.samples import Quality
from core.store.db import Store, exec_sql, open_store

U16 = CounterSpec("M1", 1 << 16, 10.0)  # ideal cycle 10 s


def _book(spec: CounterSpec = U16) -> CounterBook:
    return CounterBook({"M1.good_count": spec})


def _run(book: CounterBook, readings: list[tuple[float, int]]) -> list[tuple[int, str | None]]:
    out = []
    for t, v in readings:
        delta, note = book.reading("M1.good_count", v, at(t))
        out.append((delta, note.kind if note else None))
    return out


def test_uint16_restart_is_a_restart_not_a_wrap() -> None:
    # the reported case: 2887 -> 63 was booked as a wrap of 62,712 parts
    got = _run(_book(), [(0, 2880), (70, 2887), (770, 63), (780, 64)])
    assert got == [(0, None), (7, None), (63, "reset"), (1, None)]


def test_uint16_wrap_at_65536_and_rollover_from_the_tag() -> None:
    assert _run(_book(), [(0, 65530), (100, 4)]) == [(0, None), (10, "wrap")]
    # a PLC counting 0..9999 (rollover = 10000 in the tag)
    book = _book(CounterSpec("M1", 10_000, 10.0))
    assert _run(book, [(0, 9998), (60, 3)]) == [(0, None), (5, "wrap")]
    assert book.wraps == 1 and book.resets == 0


def test_without_an_ideal_cycle_a_large_wrap_is_still_a_restart() -> None:
    book = _book(CounterSpec("M1", 1 << 16, None))
    assert _run(book, [(0, 2887), (1, 63)]) == [(0, None), (63, "reset")]
    book = _book(CounterSpec("M1", 1 << 16, None))
    assert _run(book, [(2, 65535), (3, 2)]) == [(0, None), (3, "wrap")]
    # a float counter has no modulus: any drop is a restart
    fl = _book(CounterSpec("M1", None, None))
    assert _run(fl, [(0, 500), (1, 20)]) == [(0, None), (20, "reset")]


def test_implausible_jump_refused_then_plausible_again() -> None:
    book = _book()
    got = _run(book, [(0, 100), (60, 5100),  # 5000 parts in 60 s at a 10 s cycle: refused
                      (70, 5101), (80, 5102)])
    assert got == [(0, None), (0, "implausible"), (1, "ok"), (1, None)]
    assert book.refused == 1 and not book.flagged
    # the cap: 60 s (+5 s grace) / 10 s x 1.5 + 1 part in progress
    assert book.allowed("M1.good_count", 60) == 10
    # a restart whose count is itself impossible in the elapsed time is refused too
    assert _run(book, [(90, 900)]) == [(0, "implausible")]


def test_stall_books_nothing() -> None:
    book = _book()
    assert _run(book, [(0, 42), (10, 42), (1000, 42), (1010, 43)]) == [
        (0, None), (0, None), (0, None), (1, None)]
    assert (book.wraps, book.resets, book.refused) == (0, 0, 0)


def test_notes_become_bus_events_and_a_data_quality_alarm(store: Store,
                                                          frozen_clock: FrozenClock) -> None:
    tag = "A-LATHE1.good_count"
    book = CounterBook({tag: CounterSpec("A-LATHE1", 1 << 16, 40.0)})
    book.reading(tag, 2887, at(0))
    _, reset = book.reading(tag, 63, at(4000))
    assert reset is not None and reset.kind == "reset"
    ev = note_event(reset).as_dict()
    assert ev["kind"] == "counter_reset" and ev["booked"] == 63 and ev["detail"]["last"] == 2887
    _, bad = book.reading(tag, 9000, at(4010))
    _, ok = book.reading(tag, 9001, at(4050))
    assert bad is not None and ok is not None
    alarms = AlarmManager(store, frozen_clock)
    raised = alarms.on_detection(note_detection(bad, "A"))
    assert [c.event for c in raised] == ["raised"]
    assert alarms.by_key("data_quality:A-LATHE1") is not None
    cleared = alarms.on_detection(note_detection(ok, "A"))
    assert [c.event for c in cleared] == ["cleared"]


def _u16(loaded: LoadedConfig, eq: str) -> list:
    """The default plant's tags with eq's good counter made a uint16 (an older PLC)."""
    out = []
    for t in loaded.tags:
        if t.id == f"{eq}.good_count":
            t = dataclasses.replace(t, spec=t.spec.model_copy(update={"data_type": "uint16"}))
        out.append(t)
    return out


def test_tracker_books_true_parts_audits_the_restart_and_continues_after_restart(
        store: Store, loaded_config: LoadedConfig) -> None:
    eq = "A-LATHE1"  # ideal cycle 40 s
    tags = _u16(loaded_config, eq)
    cz = Contextualizer(tags)
    cz.refresh(store, now=T0)
    tr = ProductionTracker(tags)
    tr.load(store)
    tr.process(cz.stamp([sample(f"{eq}.good_count", 0, 2880),
                         sample(f"{eq}.good_count", 280, 2887),  # +7
                         sample(f"{eq}.good_count", 3000, 63)]))  # restarted: +63
    tr.flush(store)
    notes = tr.drain_notes()
    assert [(n.kind, n.last, n.new, n.booked) for n in notes] == [("reset", 2887, 63, 63)]
    with store.begin() as conn:
        good = exec_sql(conn, "SELECT sum(good) FROM production_count WHERE "
                                    "equipment_id = ?", (eq,)).scalar()
        audit = exec_sql(conn, "SELECT action, entity_id, detail FROM audit_entry "
                                     "WHERE action LIKE 'counter.%'").fetchall()
    assert good == 70
    assert [(a, e, json.loads(d)["booked"]) for a, e, d in audit] == [
        ("counter.reset", f"{eq}.good_count", 63)]
    # a refused jump books nothing but re-bases the counter; the new reading is saved
    # even though no parts came with it, so a restarted loopline counts on from there
    tr.process(cz.stamp([sample(f"{eq}.good_count", 3040, 40_000)]))
    assert tr.flush(store) == 1  # the audit entry of the refusal
    saved = json.loads(store.get_meta(BASELINE_KEY) or "{}")
    assert saved[f"{eq}.good_count"][0] == 40_000
    tr2 = ProductionTracker(tags)
    tr2.load(store)
    tr2.process(cz.stamp([sample(f"{eq}.good_count", 3120, 40_002)]))
    tr2.flush(store)
    with store.begin() as conn:
        good = exec_sql(conn, "SELECT sum(good) FROM production_count WHERE "
                                    "equipment_id = ?", (eq,)).scalar()
    assert good == 72
    assert tr2.drain_notes()[0].kind == "ok"


# ---------------------------------------------------------------- a real device


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PLANT = """
[site]
id = "t"
name = "T"
[[areas]]
id = "hall"
name = "Hall"
[[lines]]
id = "L"
name = "Line"
area = "hall"
driver = "plc"
  [[lines.equipment]]
  id = "M1"
  name = "Press"
  type = "generic"
  ideal_cycle_s = 10
  template = "press"
[[templates.press.tags]]
name = "good_count"
address = "hr:0"
kind = "counter"
data_type = "uint16"
[[templates.press.tags]]
name = "scrap_count"
address = "hr:1"
kind = "counter"
data_type = "uint16"
rollover = 1000
[drivers.plc]
kind = "modbus"
host = "127.0.0.1"
port = {port}
poll_interval_ms = 20
timeout_s = 0.5
[[users]]
id = "olga"
name = "Olga"
roles = ["operator"]
pin_hash = "{pin}"
"""
PIN = ("scrypt$16384$8$1$6f6c67616f6c67616f6c67616f6c6761$"
       "0a45176b672df80d6af8a86c5b76b5f417780aed03f184632229b08aa8fe5ec2")


class _ManualClock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def now(self) -> datetime:
        return self.t


async def test_modbus_device_counter_restart_books_the_true_parts(tmp_path: Path) -> None:
    from drivers.base import make_driver

    port = _free_port()
    hr = [SimData(0, count=10, values=0, datatype=DataType.REGISTERS)]
    server = ModbusTcpServer([SimDevice(1, simdata=hr)], address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    (tmp_path / "plant.toml").write_text(PLANT.format(port=port, pin=PIN), encoding="utf-8")
    loaded = load_config(tmp_path / "plant.toml")
    store = open_store(str(tmp_path / "loopline.db"))
    clock = _ManualClock(T0)
    pipe = IngestPipeline(loaded, store, FrozenClock(T0)).start()  # type: ignore[arg-type]
    seen: list[tuple[str, object]] = []
    got = asyncio.Event()

    def sink(batch: list) -> None:
        stamped = pipe.handle(batch)
        seen.extend((s.tag_id, s.value) for s in stamped if s.quality is Quality.GOOD)
        got.set()

    async def device_shows(good: int, scrap: int, after_s: float) -> None:
        clock.t = clock.t + timedelta(seconds=after_s)  # plant time the device ran for
        await server.async_setValues(1, 16, 0, [good, scrap])
        deadline = asyncio.get_running_loop().time() + 10
        while ("M1.good_count", good) not in seen or ("M1.scrap_count", scrap) not in seen:
            assert asyncio.get_running_loop().time() < deadline, f"device never showed {good}"
            got.clear()
            await asyncio.wait_for(got.wait(), 10)
        seen.clear()

    drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags)
    drv.now = clock.now
    try:
        await drv.start(sink)
        await device_shows(2880, 995, 0)  # baselines
        await device_shows(2887, 998, 70)  # +7 good, +3 scrap
        await device_shows(63, 2, 700)  # the PLC restarted (good), scrap rolled over at 1000
        pipe.maintain(archive=False)
    finally:
        await drv.stop()
        pipe.close()
        await server.shutdown()
    with store.begin() as conn:
        good, scrap = exec_sql(conn,
            "SELECT sum(good), sum(scrap) FROM production_count").one()
    store.close()
    assert (good, scrap) == (70, 7)
    assert (pipe.tracker.resets, pipe.tracker.wraps) == (1, 1)
